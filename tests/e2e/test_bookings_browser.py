"""Bookings end to end on the real stack, the owner in the inbox's Bookings view in headless
Chromium and the customer on the chat widget: a widget request is listed by the API and in the
inbox; the owner proposes another time; the customer answers "da" and the confirmation reaches
the widget; the calendar feed has it at the right local time; the customer cancels and it leaves
the feed; `replay --verify` is clean."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar
from playwright.sync_api import Page, expect, sync_playwright

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, set_credentials, settings_of
from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.services import Endpoints

BUSINESS = "demo-salon"
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(isolated_env(endpoints), tmp_path_factory.mktemp("logs")) as running:
        yield running


def weekday_ahead(days: int) -> date:
    day = datetime.now(timezone.utc).date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def feed_starts(stack: RunningStack, token: str) -> list[datetime]:
    response = httpx.get(f"{stack.base_url}/calendar/{BUSINESS}/{token}.ics", timeout=30)
    assert response.status_code == 200, response.text
    return [e.decoded("dtstart") for e in Calendar.from_ical(response.content).walk("VEVENT")]


def listed(stack: RunningStack) -> list[dict]:
    response = httpx.get(f"{stack.base_url}/v1/businesses/{BUSINESS}/appointments",
                         headers={"Authorization": f"Bearer {stack.api_keys[BUSINESS]}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["appointments"]


def _say(widget: Page, text: str) -> None:
    widget.fill("#text", text)
    widget.click("button")


@pytest.mark.timeout(1500)
def test_a_widget_request_proposed_confirmed_by_da_in_the_feed_and_cancelled(stack: RunningStack, tmp_path: Path) -> None:
    day = weekday_ahead(3)
    token = secrets.token_urlsafe(24)
    set_credentials(stack.env, BUSINESS, "calendar", {"feedToken": token})
    shots = Path(os.environ.get("AGENTSTREAM_SCREENSHOTS") or tmp_path)
    with ThreadPoolExecutor(1) as pool:
        user_id = pool.submit(_in_browser, stack, day, token, shots).result()
    events = log_events(stack.env, f"{BUSINESS}#{user_id}")
    kinds = [e.type for e in events if e.type.startswith("Appointment")]
    assert kinds == ["AppointmentRequested", "AppointmentProposed", "AppointmentConfirmed", "AppointmentCancelled"]
    assert [e.payload.by for e in events if e.type.startswith("Appointment")] == ["customer", "owner", "customer", "customer"]
    assert feed_starts(stack, token) == []
    settings = settings_of(stack)

    async def verify() -> list[str]:
        async with dynamodb_client(settings) as ddb:
            return (await new_replayer(ddb, settings).run(Scope(BUSINESS), verify=True)).differences

    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        assert run_sync(verify()) == []
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _step(name: str) -> None:
    print(f"{datetime.now(timezone.utc):%H:%M:%S} {name}", flush=True)  # where a slow run got to


def _in_browser(stack: RunningStack, day: date, token: str, shots: Path) -> str:
    ask = f"Bună! Mă numesc Ioana Pop. Puteți să mă programați pe {day.strftime('%d.%m.%Y')} la 10 pentru tuns?"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        widget = browser.new_context(viewport={"width": 480, "height": 720}).new_page()
        widget.goto(f"{stack.base_url}/?business={BUSINESS}")
        expect(widget.locator("#status")).to_have_text("online", timeout=WAIT_MS)
        _say(widget, ask)
        expect(widget.locator(".msg.agent").first).to_contain_text("Salon Ana", timeout=WAIT_MS)
        user_id = json.loads(widget.evaluate(f"localStorage.getItem('as.visitor.{BUSINESS}')"))["userId"]

        _step("widget answered")
        inbox = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
        inbox.goto(f"{stack.base_url}/inbox")
        inbox.fill("#apiKey", stack.api_keys[BUSINESS])
        inbox.fill("#name", "Ana")
        inbox.click("#sign-in")
        row = inbox.locator("tr.booking", has_text="Ioana Pop")
        for _ in range(60):  # the worker appends the request moments after the reply
            inbox.goto(f"{stack.base_url}/inbox/bookings")
            if row.count():
                break
            inbox.wait_for_timeout(1000)
        expect(row).to_contain_text("la 10:00", timeout=WAIT_MS)
        expect(row).to_contain_text("cerută, neconfirmată")
        assert [a["status"] for a in listed(stack) if a["userId"] == user_id] == ["requested"]
        _step("listed in the inbox")
        inbox.screenshot(path=str(shots / "inbox-bookings.png"), full_page=True)
        row.locator("input[name=at]").fill(f"{day.isoformat()}T11:30")
        row.locator("button", has_text="Propose").click()
        expect(widget.locator(".msg.agent", has_text="11:30")).to_have_count(1, timeout=WAIT_MS)  # no session needed

        _step("proposal delivered")
        _say(widget, "da")
        expect(widget.locator(".msg.agent", has_text="este confirmată")).to_have_count(1, timeout=WAIT_MS)
        _step("confirmation delivered")
        starts = []
        for _ in range(60):
            starts = feed_starts(stack, token)
            if starts:
                break
            inbox.wait_for_timeout(1000)
        assert [(s.date(), s.hour, s.minute, str(s.tzinfo)) for s in starts] == [(day, 11, 30, "Europe/Bucharest")]
        inbox.goto(f"{stack.base_url}/inbox/bookings")
        if day.isocalendar()[1] == datetime.now(timezone.utc).date().isocalendar()[1]:
            expect(inbox.locator("tr.booking", has_text="Ioana Pop")).to_contain_text("confirmată")

        _step("in the feed")
        _say(widget, "anulez")
        expect(widget.locator(".msg.agent", has_text="Am anulat")).to_have_count(1, timeout=WAIT_MS)
        browser.close()
    return user_id
