"""End to end over WhatsApp with the real processes (bridge, worker, gateway, delivery) and the
fake Graph API: an appointment confirmed a week ahead is reminded with the approved template when
the clock (CLOCK_FILE, moved by the test, never slept through) reaches its reminder time; the
customer's reply within the window is answered with free text; a customer who wrote STOP gets no
reminder; `replay --verify` is clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from agentstream.adapters.dynamo.client import dynamodb_client, from_item, to_item
from agentstream.stack import wait_http
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, set_credentials, settings_of
from tests.e2e.test_channels import META, meta_post, wait_for
from tests.fakes.vendors import Recorded, VendorServer
from tests.services import Endpoints

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1200)]
SALON = "demo-salon"
ZONE = ZoneInfo("Europe/Bucharest")
TEMPLATES = {"reminder": {"whatsapp": {"ro": {"name": "reminder_programare", "params": ["when", "service"]},
                                       "en": {"name": "reminder_programare", "params": ["when", "service"]}}}}


def week_ahead() -> date:
    """Tuesday to Friday, 7 to 10 days from today: the salon is open then and the day before."""
    day = date.today() + timedelta(days=7)
    while day.weekday() not in (1, 2, 3, 4):
        day += timedelta(days=1)
    return day


def with_reminders(env: dict[str, str]) -> None:
    """The demo salon reminds a day and two hours before, with an approved WhatsApp template."""
    async def run() -> None:
        s = settings_of_env(env)
        async with dynamodb_client(s) as ddb:
            key = to_item({"businessId": SALON})
            item = from_item((await ddb.get_item(TableName=s.tables.business_info, Key=key))["Item"])
            item["settings"] = {**item.get("settings", {}), "remindBeforeMinutes": [1440, 120], "templates": TEMPLATES}
            await ddb.put_item(TableName=s.tables.business_info, Item=to_item(item))

    run_sync(run())


def settings_of_env(env: dict[str, str]) -> Any:
    return settings_of(RunningStack(env, 0, Path("."), {}))


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, vendors: VendorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    clock = tmp_path_factory.mktemp("clock") / "now"
    env = isolated_env(endpoints, **vendors.env(), CLOCK_FILE=str(clock), REMINDER_TIMER_EVERY="0.5")
    with running_stack(env, tmp_path_factory.mktemp("logs"), components=()) as running:
        set_credentials(running.env, SALON, "meta", META)
        with_reminders(running.env)
        for name in ("bridge", "worker", "gateway", "delivery"):
            running.start(name)
        wait_http(running.port, timeout=60)
        yield running


def move_clock(stack: RunningStack, vendors: VendorServer, to: datetime | None) -> None:
    """The processes' and the fake Graph API's time: `to`, or the system's (None)."""
    Path(stack.env["CLOCK_FILE"]).write_text(to.strftime("%Y-%m-%dT%H:%M:%S.000Z") if to else "")
    vendors.state.now = to.timestamp if to else time.time


def says(stack: RunningStack, vendors: VendorServer, wa_id: str, mid: str, text: str, at: float) -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN1", "display_phone_number": "40700"},
        "contacts": [{"wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": mid, "timestamp": str(int(at)), "type": "text", "text": {"body": text}}]}}]}]}
    vendors.state.customer_wrote(wa_id, at)
    assert meta_post(stack, body).status_code == 200


def events(stack: RunningStack, wa_id: str, kind: str) -> list[Any]:
    return [e for e in log_events(stack.env, f"{SALON}#{wa_id}") if e.type == kind]


def to_customer(vendors: VendorServer, wa_id: str, kind: str) -> list[Recorded]:
    return [r for r in vendors.state.sent("/messages") if (r.json or {}).get("to") == wa_id and (r.json or {}).get("type") == kind]


def booked(stack: RunningStack, vendors: VendorServer, wa_id: str, day: date, hour: int) -> str:
    """The customer asks for `day` at `hour`, the owner confirms through the API: the appointment id."""
    says(stack, vendors, wa_id, f"wamid.{wa_id}.ask", f"Bună! Puteți să mă programați pe {day:%d.%m.%Y} la {hour} pentru tuns?",
         time.time())
    (request,) = wait_for(lambda: events(stack, wa_id, "AppointmentRequested"), timeout=120)
    appointment = request.payload.appointmentId
    confirmed = httpx.post(f"{stack.base_url}/v1/businesses/{SALON}/appointments/{appointment}/confirm",
                           headers={"Authorization": f"Bearer {stack.api_keys[SALON]}"}, timeout=30)
    assert confirmed.status_code == 202, confirmed.text
    wait_for(lambda: events(stack, wa_id, "AppointmentConfirmed"), timeout=60)
    return appointment


def all_delivered(stack: RunningStack, wa_id: str) -> bool:
    log = log_events(stack.env, f"{SALON}#{wa_id}")
    outbound = {e.eventId for e in log if e.type in ("ReplyGenerated", "AppointmentConfirmed") and e.payload.content}
    return bool(outbound) and outbound <= {e.payload.replyEventId for e in log if e.type == "ReplyDelivered"}


def reminders_item(stack: RunningStack, wa_id: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        s = settings_of(stack)
        async with dynamodb_client(s) as ddb:
            found = await ddb.get_item(TableName=s.tables.reminders, Key=to_item({"businessId": SALON, "userId": wa_id}))
            return from_item(found.get("Item", {}))

    return run_sync(run())


def verified(stack: RunningStack, wa_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentstream.cli", "replay", "--business", SALON, "--user", wa_id, "--verify"],
                          env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=180)


def test_a_week_ahead_reminder_goes_as_the_template_a_reply_is_free_text_and_stop_stops_them(
        stack: RunningStack, vendors: VendorServer) -> None:
    move_clock(stack, vendors, None)
    refused = len(vendors.state.refused)
    suffix = str(int(time.time()))[-6:]
    ana, bea = f"4078{suffix}1", f"4078{suffix}2"
    day = week_ahead()
    appointments = [booked(stack, vendors, ana, day, 10), booked(stack, vendors, bea, day, 12)]
    says(stack, vendors, bea, f"wamid.{bea}.stop", "STOP", time.time())
    wait_for(lambda: events(stack, bea, "CustomerOptedOut"), timeout=60)
    assert "nextDueAt" not in wait_for(lambda: (i := reminders_item(stack, bea)) and i.get("optedOut") and i)
    for user in (ana, bea):  # what went out at today's time is delivered before the clock moves
        wait_for(lambda: all_delivered(stack, user), timeout=120)

    due = wait_for(lambda: reminders_item(stack, ana).get("nextDueAt"), timeout=60)
    expected_due = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE) - timedelta(days=1)
    assert datetime.fromisoformat(due.replace("Z", "+00:00")) == expected_due  # a day before, the salon open then
    moved = expected_due.astimezone(timezone.utc) + timedelta(minutes=1)
    move_clock(stack, vendors, moved)
    (template,) = wait_for(lambda: to_customer(vendors, ana, "template"), timeout=120)
    assert template.json["template"]["name"] == "reminder_programare" and template.json["template"]["language"]["code"] == "ro"
    params = [p["text"] for p in template.json["template"]["components"][0]["parameters"]]
    assert params == [f"{day:%d.%m.%Y} 10:00", "tuns"]
    (reminder,) = events(stack, ana, "ReminderSent")
    assert reminder.payload.send.window == "closed" and reminder.payload.minutesBefore == 1440
    wait_for(lambda: any(e.payload.replyEventId == reminder.eventId for e in events(stack, ana, "ReplyDelivered")))

    texts_before = len(to_customer(vendors, ana, "text"))
    says(stack, vendors, ana, f"wamid.{ana}.thanks", "Mulțumesc, ne vedem atunci!", moved.timestamp() + 60)
    wait_for(lambda: len(to_customer(vendors, ana, "text")) > texts_before, timeout=120)
    assert len(vendors.state.refused) == refused  # the free text within the window was accepted
    reply = events(stack, ana, "ReplyGenerated")[-1]
    assert reply.payload.send.window == "open"

    starts = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE)
    second = wait_for(lambda: (d := reminders_item(stack, ana).get("nextDueAt")) and d != due and d, timeout=60)
    second_due = datetime.fromisoformat(second.replace("Z", "+00:00"))
    assert expected_due < second_due < starts  # the two-hour one (the evening before if the salon opens later)
    move_clock(stack, vendors, second_due + timedelta(minutes=1))
    wait_for(lambda: len(events(stack, ana, "ReminderSent")) == 2, timeout=120)  # the two-hour one: the round ran
    assert all(e.occurredAt < starts for e in events(stack, ana, "ReminderSent"))
    wait_for(lambda: "nextDueAt" not in reminders_item(stack, ana), timeout=60)  # nothing pending: out of the index
    assert events(stack, bea, "ReminderSent") == [] and to_customer(vendors, bea, "template") == []
    move_clock(stack, vendors, None)
    for appointment in appointments:  # the places are free again for the next run
        cancelled = httpx.post(f"{stack.base_url}/v1/businesses/{SALON}/appointments/{appointment}/cancel",
                               headers={"Authorization": f"Bearer {stack.api_keys[SALON]}"}, timeout=30)
        assert cancelled.status_code == 202, cancelled.text
    for user in (ana, bea):
        wait_for(lambda: events(stack, user, "AppointmentCancelled"), timeout=60)
        done = verified(stack, user)
        assert done.returncode == 0 and "no differences" in done.stderr, done.stdout + done.stderr
