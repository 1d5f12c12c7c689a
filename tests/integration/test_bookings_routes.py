"""Bookings over the business API, on the gateway served in the test's loop over the real local
DynamoDB server; the worker's processor (with its appointment hooks) folds what is appended."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.dynamo.bookings import BookingsTable
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, new_event, stream_id, utc_now
from agentstream.streams.appointment_requests import AppointmentAnswers, AppointmentRequester, chained
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.replay import Scope
from agentstream.wiring import gateway_deps, new_replayer
from tests.conftest import isolated_env, settings_from
from tests.integration.test_gateway_auth import RESTAURANT, SALON, Gateway, _serve
from tests.integration.world import CountingResponder, World, drain
from tests.services import Endpoints


def weekday_ahead(days: int) -> date:
    """A Monday-to-Friday day at least `days` ahead (the demo salon is open 09-13 and 14-19)."""
    day = utc_now().date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass
class Salon:
    gw: Gateway
    world: World

    def headers(self, business: str = SALON) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gw.keys[business]}"}

    async def says(self, user: str, text: str) -> Event:
        event = new_event("MessageReceived", business_id=SALON, user_id=user, channel="websocket",
                          payload={"content": text, "replyTo": {"socket": "widget"}})
        appended = await self.world.store.append(event)
        await drain(self.world, event.streamId)
        return appended.event

    async def act(self, appointment_id: str, action: str, body: Any = None, business: str = SALON) -> httpx.Response:
        return await self.gw.http.post(f"/v1/businesses/{business}/appointments/{appointment_id}/{action}",
                                       content=b"" if body is None else json.dumps(body).encode(),
                                       headers=self.headers(business))

    async def listed(self, query: str = "") -> list[dict[str, Any]]:
        response = await self.gw.http.get(f"/v1/businesses/{SALON}/appointments{query}", headers=self.headers())
        assert response.status_code == 200, response.text
        return response.json()["appointments"]

    async def log(self, user: str) -> list[Event]:
        return await self.world.store.read(stream_id(SALON, user))

    async def request(self, user: str, day: date, hour: int = 10) -> str:
        """The customer asks for an appointment; the id of the request the worker appended."""
        await self.says(user, f"Bună! Puteți să mă programați pe {day.strftime('%d.%m.%Y')} la {hour} pentru tuns?")
        return next(e.payload.appointmentId for e in await self.log(user) if e.type == "AppointmentRequested")


@pytest.fixture(scope="module")
async def salon(endpoints: Endpoints) -> AsyncIterator[Salon]:
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(isolated_env(endpoints), mp)
        await setup(settings, with_topics=False)
        await populate(settings)
        keys = await demo_credentials(settings, [SALON, RESTAURANT])
        async with AsyncExitStack() as stack:
            d = await gateway_deps(stack, settings)
            server, task, port = await _serve(d)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60))
            published: list[Event] = []

            async def publish(event: Event, first: bool = False) -> None:
                published.append(event)

            responder = CountingResponder()
            hooks = chained(AppointmentAnswers(d.bookings), AppointmentRequester(d.store))
            processor = ConversationProcessor(d.store, ProjectionStore(d.ddb, settings.tables),
                                              BusinessDirectory(d.ddb, settings.tables), responder, publish, after_reply=hooks)
            world = World(d.ddb, settings, d.store, processor, responder, published)
            try:
                yield Salon(Gateway(d, http, port, keys), world)
            finally:
                server.should_exit = True
                await task


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_a_request_is_listed_proposed_another_time_confirmed_by_da_and_replay_verifies(salon: Salon) -> None:
    ana, day = fresh("ana"), weekday_ahead(3)
    aid = await salon.request(ana, day)
    rows = {r["appointmentId"]: r for r in await salon.listed(f"?from={day.isoformat()}&to={day.isoformat()}")}
    assert rows[aid]["status"] == "requested" and rows[aid]["at"].startswith(f"{day.isoformat()}T10:00")
    assert rows[aid]["service"] == "tuns" and rows[aid]["userId"] == ana
    proposed = await salon.act(aid, "propose", {"at": f"{day.isoformat()}T11:30"})
    assert proposed.status_code == 202, proposed.text
    await drain(salon.world, stream_id(SALON, ana))
    offer = next(e for e in await salon.log(ana) if e.type == "AppointmentProposed")
    assert offer.eventId in [p.eventId for p in salon.world.published]  # delivered, no session needed
    assert "11:30" in offer.payload.content and offer.payload.deliverTo == {"socket": "widget"}
    await salon.says(ana, "Da")
    await drain(salon.world, stream_id(SALON, ana))
    confirmed = next(e for e in await salon.log(ana) if e.type == "AppointmentConfirmed")
    assert confirmed.payload.by == "customer" and confirmed.eventId in [p.eventId for p in salon.world.published]
    rows = {r["appointmentId"]: r for r in await salon.listed(f"?from={day.isoformat()}&to={day.isoformat()}&status=confirmed")}
    assert rows[aid]["at"].startswith(f"{day.isoformat()}T11:30") and rows[aid]["minutes"] == 30
    again = await salon.act(aid, "confirm")
    assert again.status_code == 409 and "confirmed" in again.json()["error"]
    report = await new_replayer(salon.world.ddb, salon.world.settings).run(Scope(SALON, ana), verify=True)
    assert report.differences == []


async def test_the_api_key_comes_first_and_another_business_sees_no_appointment(salon: Salon) -> None:
    bob = fresh("bob")
    aid = await salon.request(bob, weekday_ahead(4))
    no_key = await salon.gw.http.get(f"/v1/businesses/{SALON}/appointments")
    assert no_key.status_code == 401
    other = await salon.act(aid, "confirm", business=RESTAURANT)
    assert other.status_code == 404 and "bob" not in other.text
    bad = await salon.gw.http.get(f"/v1/businesses/{SALON}/appointments?status=maybe", headers=salon.headers())
    assert bad.status_code == 400
    assert (await salon.act(aid, "propose", {"at": "soon"})).status_code == 400
    assert [e.type for e in await salon.log(bob)].count("AppointmentProposed") == 0


RACE_SLOTS = ((day, hour) for day in sorted({weekday_ahead(10 + n) for n in range(200)})
              for hour in (9, 10, 11, 12, 14, 15, 16, 17))  # every open hour of the weekdays ahead, once


@pytest.mark.soak
async def test_two_owners_confirming_the_last_place_at_once_give_one_confirmation_and_one_409(salon: Salon) -> None:
    day, hour = next(RACE_SLOTS)  # a slot of this run only (the module's tables are shared)
    first, second = fresh("c1"), fresh("c2")
    ids = [await salon.request(first, day, hour), await salon.request(second, day, hour)]
    answers = await asyncio.gather(*(salon.act(i, "confirm") for i in ids))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "no place left" in refused.json()["error"]
    confirmations = [e for u in (first, second) for e in await salon.log(u) if e.type == "AppointmentConfirmed"]
    assert len(confirmations) == 1
    held = await salon.gw.d.store.side(SALON, f"slot:{day.isoformat()}T{hour:02d}:00")
    assert held == {"held": 1}


async def test_the_calendar_feed_shows_confirmed_appointments_at_local_time_and_drops_cancelled_ones(salon: Salon) -> None:
    from icalendar import Calendar

    ana, day = fresh("ana"), weekday_ahead(6)
    await salon.says(ana, "Bună ziua, mă numesc Ana Pop, telefonul meu este 0722 123 456.")
    aid = await salon.request(ana, day, 15)
    assert (await salon.act(aid, "confirm")).status_code == 202
    await drain(salon.world, stream_id(SALON, ana))
    token = (await salon.gw.d.credentials.rotate(SALON, "calendar"))["feedToken"]
    response = await salon.gw.http.get(f"/calendar/{SALON}/{token}.ics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    events = {str(e["uid"]): e for e in Calendar.from_ical(response.content).walk("VEVENT")}
    booked = next(e for uid, e in events.items() if uid.startswith(aid))
    start = booked.decoded("dtstart")
    assert (start.date(), start.hour, start.minute, str(start.tzinfo)) == (day, 15, 0, "Europe/Bucharest")
    assert booked.decoded("dtend") - start == timedelta(minutes=30)
    assert str(booked["summary"]) == "tuns: Ana Pop" and "+40722123456" in str(booked["description"])
    assert str(booked["status"]) == "CONFIRMED"
    wrong = await salon.gw.http.get(f"/calendar/{SALON}/{token[:-1]}x.ics")
    unknown = await salon.gw.http.get(f"/calendar/no-such-business/{token}.ics")
    assert (wrong.status_code, wrong.text) == (unknown.status_code, unknown.text) == (404, "not found")
    await salon.says(ana, "anulez")
    await drain(salon.world, stream_id(SALON, ana))
    again = await salon.gw.http.get(f"/calendar/{SALON}/{token}.ics")
    assert not [e for e in Calendar.from_ical(again.content).walk("VEVENT") if str(e["uid"]).startswith(aid)]


async def test_replay_sets_the_slot_items_from_the_appointments_and_verify_names_a_wrong_one(salon: Salon) -> None:
    cora, day = fresh("cora"), weekday_ahead(8)
    aid = await salon.request(cora, day, 16)
    assert (await salon.act(aid, "confirm")).status_code == 202
    slot = f"slot:{day.isoformat()}T16:00"
    replayer = lambda: new_replayer(salon.world.ddb, salon.world.settings)  # noqa: E731 - a fresh one per run
    assert [d for d in (await replayer().run(Scope(SALON), verify=True)).differences if "slot" in d] == []
    await salon.gw.d.store.set_side(SALON, slot, {"held": 3})  # a count gone wrong
    found = (await replayer().run(Scope(SALON), verify=True)).differences
    assert f"slot {SALON} {slot}: holds 3, the appointments hold 1" in found
    await replayer().run(Scope(SALON))
    assert await salon.gw.d.store.side(SALON, slot) == {"held": 1}
    assert (await replayer().run(Scope(SALON), verify=True)).differences == []
