"""A real browser (Debian's headless Chromium, driven by Playwright) uses the chat widget."""

from __future__ import annotations

import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from agentstream.adapters.dynamo.credentials import CredentialStore, issue_widget_token
from agentstream.adapters.dynamo.client import dynamodb_client
from tests.e2e.stack import RunningStack, log_events, run_sync, settings_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stack(shared_stack: RunningStack) -> RunningStack:
    return shared_stack  # the session's (tests/e2e/conftest.py): each test has visitors of its own


def test_widget_in_a_browser_sends_and_shows_the_reply_escaped(stack: RunningStack) -> None:
    # Playwright's sync API owns an event loop; a thread of its own keeps it away from pytest-asyncio's.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_chat_in_browser, stack).result()


def _chat_in_browser(stack: RunningStack) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{stack.base_url}/?business=demo-salon")
        expect(page.locator("#status")).to_have_text("online", timeout=30_000)
        page.fill("#text", "Buna ziua, la ce ora inchideti azi? <b>bold</b> '; DROP TABLE sessions;--")
        page.click("button")
        user_bubble = page.locator(".msg.user").first
        expect(user_bubble).to_have_text("Buna ziua, la ce ora inchideti azi? <b>bold</b> '; DROP TABLE sessions;--")
        expect(page.locator(".msg.user b")).to_have_count(0)
        expect(user_bubble).not_to_have_class("msg user pending", timeout=30_000)
        reply = page.locator(".msg.agent").first
        expect(reply).to_contain_text("Salon Ana", timeout=60_000)
        page.screenshot(path=str(stack.logs / "widget.png"))
        browser.close()


def widget_keys(stack: RunningStack, business: str) -> list[str]:
    settings = settings_of(stack)

    async def run() -> list[str]:
        async with dynamodb_client(settings) as ddb:
            return await CredentialStore(ddb, settings.tables.credentials, settings.credentials_key).widget_keys(business)

    return run_sync(run())


def test_widget_refreshes_an_expired_token_and_keeps_the_visitor(stack: RunningStack) -> None:
    """The browser holds a token the server finds expired (though the page thinks it is not): the
    socket closes with 4403, the widget refreshes the token and goes on as the same userId."""
    user_id = httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json()["userId"]
    expired, _ = issue_widget_token(widget_keys(stack, "demo-salon"), "demo-salon", user_id, ttl_s=-3600)
    saved = {"userId": user_id, "token": expired, "expiresAt": int(time.time()) + 3600}
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_chat_with_saved_visitor, stack, saved).result()
    assert held["userId"] == user_id and held["token"] != expired and "stale" not in held
    assert [e.payload.content for e in log_events(stack.env, f"demo-salon#{user_id}") if e.type == "MessageReceived"] == ["Mai sunteți acolo?"]


def _chat_with_saved_visitor(stack: RunningStack, saved: dict) -> dict:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.add_init_script(f"localStorage.setItem('as.visitor.demo-salon', {json.dumps(json.dumps(saved))})")
        page.goto(f"{stack.base_url}/?business=demo-salon")
        expect(page.locator("#status")).to_have_text("online", timeout=30_000)
        page.fill("#text", "Mai sunteți acolo?")
        page.click("button")
        expect(page.locator(".msg.agent").first).to_contain_text("Salon Ana", timeout=60_000)
        held = json.loads(page.evaluate("localStorage.getItem('as.visitor.demo-salon')"))
        browser.close()
    return held


def test_a_reply_lost_with_its_socket_comes_again_on_reconnect(stack: RunningStack) -> None:
    """The reply's frame left the gateway but never reached the page (the socket died between):
    the widget reconnects with its cursor, gets the reply from the log and shows it once."""
    with ThreadPoolExecutor(1) as pool:
        urls = pool.submit(_chat_losing_the_first_reply, stack).result()
    assert len(urls) == 2 and "after=" not in urls[0] and "after=" in urls[1]


def _chat_losing_the_first_reply(stack: RunningStack) -> list[str]:
    urls: list[str] = []

    def route(ws: Any) -> None:  # every socket of the page goes through here, to the real gateway
        urls.append(ws.url)
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if len(urls) == 1 and json.loads(message).get("type") == "reply":
                ws.close(code=4000, reason="lost")  # the frame is dropped with its socket
            else:
                ws.send(message)

        server.on_message(to_page)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.route_web_socket(re.compile(r".*/ws/.*"), route)
        page.goto(f"{stack.base_url}/?business=demo-salon")
        expect(page.locator("#status")).to_have_text("online", timeout=30_000)
        page.fill("#text", "Ce program aveti sambata?")
        page.click("button")
        expect(page.locator(".msg.agent")).to_have_count(1, timeout=60_000)
        expect(page.locator(".msg.agent").first).to_contain_text("Salon Ana")
        page.wait_for_timeout(1000)  # a second copy would show as a second bubble
        expect(page.locator(".msg.agent")).to_have_count(1)
        browser.close()
    return urls
