"""A real browser (Debian's headless Chromium, driven by Playwright) uses the chat widget."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, running_stack
from tests.services import Endpoints

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(isolated_env(endpoints), tmp_path_factory.mktemp("logs")) as running:
        yield running


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
