"""The appointment commands over the in-memory event store: moves, capacity, slots, answers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentstream.adapters.http.bookings_service import Bookings
from agentstream.adapters.http.errors import HttpError
from agentstream.adapters.memory_stores import MemoryDirectory, memory_stores
from agentstream.events import new_event
from agentstream.projections.appointments import apply_appointments, empty_appointments
from agentstream.streams.appointment_requests import AppointmentAnswers, AppointmentRequester, appointment_id

B = "salon"
ZONE = "Europe/Bucharest"
DAY = (datetime.now(timezone.utc) + timedelta(days=30)).date()  # a Monday-to-Saturday day is found below
while DAY.weekday() == 6:
    DAY += timedelta(days=1)
HOURS = {d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
INFO = {"businessId": B, "timezone": ZONE, "language": "ro", "openingHours": HOURS, "slotMinutes": 30,
        "bookingCapacity": 1, "services": ["tuns bărbați 60 lei", {"name": "vopsit", "minutes": 90}]}


class Rows:
    """The bookings read model as the service reads it: the appointment's customer."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}

    async def row(self, business_id: str, appointment_id: str) -> dict[str, Any] | None:
        user = self.users.get(appointment_id)
        return {"userId": user} if user else None

    async def between(self, business_id: str, start: str, end: str) -> list[dict[str, Any]]:
        return []


def world(**info: Any) -> tuple[Any, Bookings, Rows]:
    store, _ = memory_stores()
    rows = Rows()
    return store, Bookings(store, MemoryDirectory({B: INFO | info}), rows), rows  # type: ignore[arg-type]


async def ask(store: Any, rows: Rows, user: str, text: str, told: list[Any] | None = None) -> str:
    """A customer's message asking for an appointment, through the worker's hook (twice: a
    redelivery): its id. The owner is told of each new request through `told`."""
    inbound = new_event("MessageReceived", business_id=B, user_id=user, channel="rest",
                        payload={"content": text, "replyTo": {"to": user}})
    inbound = (await store.append(inbound)).event

    async def notify(event: Any) -> None:
        (told if told is not None else []).append(event)

    for _ in range(2):
        await AppointmentRequester(store, notify)(inbound, INFO)
    rows.users[appointment_id(inbound.eventId)] = user
    return appointment_id(inbound.eventId)


def on(day: Any, hm: str) -> str:
    return f"{day.isoformat()} la {hm}"


async def test_a_request_read_from_the_message_is_appended_once_with_the_customers_addressing():
    store, bookings, rows = world()
    told: list[Any] = []
    aid = await ask(store, rows, "ana", f"Puteți să mă programați pe {DAY.strftime('%d.%m.%Y')} la 10 pentru tuns?", told)
    assert [(e.type, e.payload.appointmentId) for e in told] == [("AppointmentRequested", aid)]
    assert [e.type for e in await store.read(f"{B}#ana")].count("AppointmentRequested") == 1
    appointment, _ = await bookings.appointment(B, aid)
    assert appointment["status"] == "requested"
    assert appointment["at"].startswith(f"{DAY.isoformat()}T10:00") and appointment["service"] == "tuns"
    assert appointment["deliverTo"] == {"to": "ana"} and appointment["by"] == "customer"


async def make_request(store: Any, rows: Rows, user: str, hm: str = "10:00", service: str | None = "tuns") -> str:
    """A request appended directly (as the hook would) for DAY at `hm`."""
    inbound = (await store.append(new_event("MessageReceived", business_id=B, user_id=user, channel="rest",
                                            payload={"content": "x", "replyTo": {"to": user}}))).event
    at = datetime.fromisoformat(f"{DAY.isoformat()}T{hm}").replace(tzinfo=__import__("zoneinfo").ZoneInfo(ZONE))
    from agentstream.streams.appointment_requests import request_event
    await store.append(request_event(inbound, {"at": at.isoformat(timespec="seconds"), "service": service}))
    aid = appointment_id(inbound.eventId)
    rows.users[aid] = user
    return aid


async def test_the_owner_proposes_the_customer_says_da_and_it_is_confirmed_with_a_message():
    store, bookings, rows = world()
    aid = await make_request(store, rows, "ana")
    await bookings.act(B, aid, "propose", {"at": f"{DAY.isoformat()}T11:30"})
    proposed, _ = await bookings.appointment(B, aid)
    assert proposed["status"] == "proposed" and proposed["at"].startswith(f"{DAY.isoformat()}T11:30")
    answer = (await store.append(new_event("MessageReceived", business_id=B, user_id="ana", channel="rest",
                                           payload={"content": "Da, mulțumesc!"}))).event
    await AppointmentAnswers(bookings)(answer, INFO)
    await AppointmentAnswers(bookings)(answer, INFO)  # a redelivery answers once
    confirmed, _ = await bookings.appointment(B, aid)
    assert confirmed["status"] == "confirmed" and confirmed["by"] == "customer"
    events = [e for e in await store.read(f"{B}#ana") if e.type == "AppointmentConfirmed"]
    assert len(events) == 1 and "este confirmată" in events[0].payload.content and "11:30" in events[0].payload.content
    assert events[0].payload.deliverTo == {"to": "ana"}
    assert await store.side(B, f"slot:{DAY.isoformat()}T11:30") == {"held": 1}


async def test_the_last_place_goes_to_one_of_two_confirmations_at_once_the_other_is_409():
    store, bookings, rows = world()
    first, second = await make_request(store, rows, "ana"), await make_request(store, rows, "bob")
    results = await asyncio.gather(bookings.act(B, first, "confirm"), bookings.act(B, second, "confirm"),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["HttpError", "dict"]
    refused = next(r for r in results if isinstance(r, HttpError))
    assert refused.status == 409 and "no place left" in str(refused)
    assert await store.side(B, f"slot:{DAY.isoformat()}T10:00") == {"held": 1}


async def test_a_long_service_holds_every_slot_it_spans_and_cancelling_gives_them_back():
    store, bookings, rows = world(bookingCapacity=2)
    aid = await make_request(store, rows, "ana", "10:00", "vopsit")
    await bookings.act(B, aid, "confirm")
    slots = [f"slot:{DAY.isoformat()}T{hm}" for hm in ("10:00", "10:30", "11:00")]
    assert [await store.side(B, s) for s in slots] == [{"held": 1}] * 3
    await bookings.act(B, aid, "cancel", {"reason": "owner ill"})
    assert [await store.side(B, s) for s in slots] == [{"held": 0}] * 3
    with pytest.raises(HttpError) as refused:
        await bookings.act(B, aid, "confirm")
    assert refused.value.status == 409 and "cancelled" in str(refused.value)


async def test_nothing_is_booked_on_a_closed_day_or_outside_the_hours_and_nothing_is_appended():
    store, bookings, rows = world(closedDays=[DAY.isoformat()])
    aid = await make_request(store, rows, "ana")
    head = await store.head(f"{B}#ana")
    with pytest.raises(HttpError) as refused:
        await bookings.act(B, aid, "confirm")
    assert refused.value.status == 409 and "closed day" in str(refused.value)
    store, bookings, rows = world()
    aid = await make_request(store, rows, "ana", "18:45")
    with pytest.raises(HttpError) as refused:
        await bookings.act(B, aid, "propose", {"at": f"{DAY.isoformat()}T21:00"})
    assert "opening hours" in str(refused.value)
    assert await store.head(f"{B}#ana") == head


async def test_a_bad_time_or_an_unknown_action_or_appointment_is_refused_clearly():
    store, bookings, rows = world()
    aid = await make_request(store, rows, "ana")
    for body in ({}, {"at": "tomorrow"}, {"at": DAY.isoformat()}):
        with pytest.raises(HttpError) as refused:
            await bookings.act(B, aid, "propose", body)
        assert refused.value.status == 400
    with pytest.raises(HttpError) as refused:
        await bookings.act(B, aid, "teleport")
    assert refused.value.status == 404
    with pytest.raises(HttpError) as refused:
        await bookings.act(B, "nope", "confirm")
    assert refused.value.status == 404


async def test_the_customer_cancels_with_anulez_and_the_place_is_free_again():
    store, bookings, rows = world()
    aid = await make_request(store, rows, "ana")
    await bookings.act(B, aid, "confirm")
    answer = (await store.append(new_event("MessageReceived", business_id=B, user_id="ana", channel="rest",
                                           payload={"content": "anulez programarea"}))).event
    await AppointmentAnswers(bookings)(answer, INFO)
    state = empty_appointments(B, "ana")
    for e in await store.read(f"{B}#ana"):
        state, _ = apply_appointments(state, e)
    assert state["appointments"][aid]["status"] == "cancelled" and state["appointments"][aid]["by"] == "customer"
    assert await store.side(B, f"slot:{DAY.isoformat()}T10:00") == {"held": 0}


async def whatsapp_request(store: Any, rows: Rows, user: str, wrote_days_ago: float) -> str:
    """A WhatsApp customer's request for DAY at 10:00, their last message `wrote_days_ago` days ago."""
    wrote = datetime.now(timezone.utc) - timedelta(days=wrote_days_ago)
    inbound = (await store.append(new_event("MessageReceived", business_id=B, user_id=user, channel="whatsapp",
                                            occurred_at=wrote, payload={"content": "x", "replyTo": {"to": user}}))).event
    at = datetime.fromisoformat(f"{DAY.isoformat()}T10:00").replace(tzinfo=__import__("zoneinfo").ZoneInfo(ZONE))
    from agentstream.streams.appointment_requests import request_event
    await store.append(request_event(inbound, {"at": at.isoformat(timespec="seconds"), "service": "tuns"}))
    rows.users[appointment_id(inbound.eventId)] = user
    return appointment_id(inbound.eventId)


CANCELLED = {"appointmentCancelled": {"whatsapp": {"ro": {"name": "programare_anulata", "params": ["service", "when"]}}}}


async def test_an_owners_cancellation_outside_the_window_goes_as_its_template() -> None:
    store, bookings, rows = world(settings={"templates": CANCELLED})
    aid = await whatsapp_request(store, rows, "ana", wrote_days_ago=3)
    assert "notSent" not in await bookings.act(B, aid, "cancel")
    (cancelled,) = [e for e in await store.read(f"{B}#ana") if e.type == "AppointmentCancelled"]
    send = cancelled.payload.send
    assert send.window == "closed" and send.template.name == "programare_anulata"
    assert send.template.params == ["tuns", f"{DAY.isoformat()} 10:00"] and send.template.language == "ro"
    inside = await whatsapp_request(store, rows, "bob", wrote_days_ago=0.5)
    await bookings.act(B, inside, "cancel")
    (free_text,) = [e for e in await store.read(f"{B}#bob") if e.type == "AppointmentCancelled"]
    assert free_text.payload.send.window == "open" and free_text.payload.send.template is None


@pytest.mark.parametrize("action", ["cancel", "decline", "propose", "confirm"])
async def test_without_the_purposes_template_the_answer_says_why_the_message_cannot_go(action: str) -> None:
    store, bookings, rows = world(settings={"templates": CANCELLED if action != "cancel" else {}})
    aid = await whatsapp_request(store, rows, "ana", wrote_days_ago=3)
    done = await bookings.act(B, aid, action, {"at": f"{DAY.isoformat()}T11:00"} if action == "propose" else {})
    purpose = {"cancel": "appointmentCancelled", "decline": "appointmentDeclined", "propose": "appointmentProposed",
               "confirm": "appointmentConfirmed"}[action]
    refusal = done["notSent"]
    assert refusal.startswith("outside WhatsApp's 24-hour customer-service window (the customer last wrote at ")
    assert refusal.endswith(f"no approved template for {purpose!r} on whatsapp in 'ro': "
                            f"add one under settings.templates.{purpose}.whatsapp.ro")
    assert done["status"] == {"cancel": "cancelled", "decline": "declined", "propose": "proposed",
                              "confirm": "confirmed"}[action], "the owner's move holds"
    (event,) = [e for e in await store.read(f"{B}#ana") if e.seq == done["seq"]]
    assert event.payload.send.window == "closed" and event.payload.send.template is None  # recorded: not sent
