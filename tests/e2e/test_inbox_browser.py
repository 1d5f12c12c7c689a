"""The owner's inbox in a real browser (Debian's headless Chromium, driven by Playwright, as
test_browser.py does), beside a customer on the chat widget, on the real stack: the owner signs
in, takes over the widget's conversation and replies; the widget shows the reply; the customer's
next message gets no AI reply; after release the next one does. Saves inbox-*.png screenshots
in the test's temporary folder, or in AGENTSTREAM_SCREENSHOTS (`make screenshots` sets it to docs/)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, running_stack
from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.services import Endpoints

BUSINESS = "demo-salon"
WAIT_MS = 60_000
RUNS = int(os.environ.get("INBOX_BROWSER_RUNS", "1"))  # the same test again on one stack (a loop of N runs)


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of its own: a conversation handed to a person has messages the AI does not answer,
    which the shared stack's analytics test would count."""
    with running_stack(isolated_env(endpoints), tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.mark.parametrize("run", range(RUNS))
def test_the_owner_takes_over_a_widget_conversation_in_the_inbox(stack: RunningStack, run: int, tmp_path: Path) -> None:
    shots = Path(os.environ.get("AGENTSTREAM_SCREENSHOTS") or tmp_path)
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API away from pytest-asyncio's loop
        user_id, texts = pool.submit(_take_over_in_browser, stack, shots if run == 0 else None).result()
    events = log_events(stack.env, f"{BUSINESS}#{user_id}")
    inbound = {e.payload.content: e.eventId for e in events if e.type == "MessageReceived"}
    answered = {e.payload.inReplyTo for e in events if e.type == "ReplyGenerated"}
    assert inbound[texts["first"]] in answered
    assert inbound[texts["quiet"]] not in answered  # handed off at its seq: no AI reply
    assert inbound[texts["after"]] in answered  # released: the AI answers again
    person = [e.payload for e in events if e.type == "OwnerReplied"]
    assert [(p.author, p.content) for p in person] == [("Ana", texts["owner"])]
    assert [e.type for e in events if e.type.startswith("Handoff")] == ["HandoffRequested", "HandoffNoticeSent", "HandoffReleased"]


def _say(widget: Page, text: str) -> None:
    widget.fill("#text", text)
    widget.click("button")


def _take_over_in_browser(stack: RunningStack, shots: Path | None) -> tuple[str, dict[str, str]]:
    texts = {"first": "Bună ziua, aș vrea o programare joi <b>dimineața</b>",
             "owner": "Bună, sunt Ana: joi la 10 e liber. <script>alert(1)</script>",
             "quiet": "Perfect, mulțumesc! '; DROP TABLE sessions;--",
             "after": "Și la ce oră închideți azi?"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        widget = browser.new_context(viewport={"width": 480, "height": 720}).new_page()
        widget.goto(f"{stack.base_url}/?business={BUSINESS}")
        expect(widget.locator("#status")).to_have_text("online", timeout=WAIT_MS)
        _say(widget, texts["first"])
        expect(widget.locator(".msg.agent").first).to_contain_text("Salon Ana", timeout=WAIT_MS)
        user_id = json.loads(widget.evaluate(f"localStorage.getItem('as.visitor.{BUSINESS}')"))["userId"]

        inbox = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()  # cookies of its own
        inbox.goto(f"{stack.base_url}/inbox")
        inbox.fill("#apiKey", stack.api_keys[BUSINESS])
        inbox.fill("#name", "Ana")
        inbox.click("#sign-in")
        row = inbox.locator("tr.conversation", has_text=user_id)
        expect(row.locator(".state")).to_have_text("AI", timeout=WAIT_MS)
        if shots:
            inbox.screenshot(path=str(shots / "inbox-list.png"), full_page=True)
        row.locator("a").click()
        expect(inbox.locator(".msg.user").first).to_contain_text(texts["first"], timeout=WAIT_MS)  # verbatim: <b> shown
        inbox.click("#take-over")
        expect(inbox.locator("#state")).to_have_text("Waiting for a person", timeout=WAIT_MS)
        inbox.fill("#text", texts["owner"])
        inbox.click("#send")
        expect(widget.locator(".msg.agent", has_text=texts["owner"])).to_have_count(1, timeout=WAIT_MS)
        expect(widget.locator(".msg.agent script")).to_have_count(0)
        replies_before = widget.locator(".msg.agent").count()

        _say(widget, texts["quiet"])
        expect(inbox.locator(".msg.user", has_text=texts["quiet"])).to_have_count(1, timeout=WAIT_MS)  # live
        expect(inbox.locator("#state")).to_have_text("Person", timeout=WAIT_MS)
        if shots:
            inbox.screenshot(path=str(shots / "inbox-conversation.png"), full_page=True)
        inbox.click("#release")
        expect(inbox.locator("#state")).to_have_text("AI", timeout=WAIT_MS)
        _say(widget, texts["after"])
        expect(widget.locator(".msg.agent")).to_have_count(replies_before + 1, timeout=WAIT_MS)
        if shots:
            widget.screenshot(path=str(shots / "inbox-widget.png"))
        browser.close()
    return user_id, texts
