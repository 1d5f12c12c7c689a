"""In Chromium: three widget messages 0.4 s apart get one reply covering all three, with the
typing indicator first and the reply's text shown as the model streams it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from agentstream.bench.model_server import ModelBehaviour, ModelServer
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, running_stack
from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.services import Endpoints

pytestmark = pytest.mark.soak
TEXTS = ("Buna", "as vrea o programare", "joi la 10?")
# every frame the page's sockets receive, and every text the partial reply bubble shows
RECORDER = """
window.__frames = []; window.__partials = [];
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  ws.addEventListener("message", (e) => window.__frames.push(JSON.parse(e.data)));
  return ws;
};
window.WebSocket.prototype = Native.prototype;
new MutationObserver(() => {
  for (const el of document.querySelectorAll(".msg.agent.partial")) {
    const last = window.__partials[window.__partials.length - 1];
    if (el.textContent && el.textContent !== last) window.__partials.push(el.textContent);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour(stream_pieces=4, piece_delay_s=0.2)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, model: ModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = isolated_env(endpoints, OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=model.base_url,
                       OPENAI_MODEL="local-model", OPENAI_TIMEOUT="120", REPLY_AFTER_QUIET_MS="2500")
    with running_stack(env, tmp_path_factory.mktemp("logs")) as running:
        yield running


def test_a_burst_in_the_widget_gets_one_streamed_reply_covering_it(stack: RunningStack) -> None:
    with ThreadPoolExecutor(1) as pool:
        frames, partials, whole = pool.submit(_burst_in_browser, stack).result()
    acks = [f["clientMessageId"] for f in frames if f["type"] == "ack"]
    (reply,) = [f for f in frames if f["type"] == "reply"]
    assert len(acks) == 3 and reply["covers"] == acks  # one reply, listing all three messages
    assert any(f["type"] == "typing" for f in frames)
    deltas = [f for f in frames if f["type"] == "delta" and f["eventId"] == reply["eventId"]]
    assert len(deltas) >= 3 and deltas[-1]["text"] == reply["text"] == whole
    assert len([p for p in partials if p != whole]) >= 2 and all(whole.startswith(p) for p in partials)
    explained = httpx.get(f"{stack.base_url}/v1/replies/{reply['eventId']}/explain",
                          headers={"Authorization": f"Bearer {stack.api_keys['demo-salon']}"}, timeout=30).json()
    assert [c["content"] for c in explained["covers"]] == list(TEXTS)
    assert explained["prompt"][-1] == {"role": "user", "content": "\n".join(TEXTS)}


def _burst_in_browser(stack: RunningStack) -> tuple[list[dict[str, Any]], list[str], str]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.add_init_script(RECORDER)
        page.goto(f"{stack.base_url}/?business=demo-salon")
        expect(page.locator("#status")).to_have_text("online", timeout=30_000)
        for text in TEXTS:
            page.fill("#text", text)
            page.click("button")
            page.wait_for_timeout(400)
        expect(page.locator("#typing[data-state=typing]")).to_have_count(1, timeout=60_000)
        whole = page.locator(".msg.agent:not(.partial)")
        expect(whole).to_contain_text("[model] re:", timeout=120_000)
        text = whole.first.text_content() or ""
        frames, partials = page.evaluate("[window.__frames, window.__partials]")
        page.screenshot(path=str(stack.logs / "burst.png"))
        browser.close()
    return frames, partials, text
