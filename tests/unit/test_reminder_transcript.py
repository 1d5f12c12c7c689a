"""A reminder in the conversation the owner sees: a ReminderSent that stands is a message of the
customer's last session (kind "reminder", by the AI) and, while that session is live, a turn the
model sees; one the reminders fold refused is not shown. The two folds agree on which stand,
whatever the order of confirmations, moves, cancellations, opt-outs and (stale) timers' appends."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings, strategies as st

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.llm import OfflineResponder
from agentstream.events import Event, iso, new_event
from agentstream.projections.conversation import CONVERSATION, active_session
from agentstream.projections.reminders import REMINDERS, due_reminders, reminder_key, reminder_stands
from agentstream.streams.appointment_requests import appointment_id, request_event
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.reminder_timer import reminder_event
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture
from tests.unit.test_inbox_sign_out import sign_in
from tests.unit.test_reminders import CFG, T0, WEEK_AHEAD, confirmed, event, message, utc

DAY_BEFORE = utc(2026, 12, 1, 8)  # the 1440-minute reminder of WEEK_AHEAD (Wednesday 10:00 local)


def both(events: list[Event]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The reminders state, the conversation memory and the message items, after `events`."""
    rem, memory, messages = REMINDERS.empty("salon", "u"), CONVERSATION.empty("salon", "u"), []
    for e in events:
        rem, _ = REMINDERS.apply(rem, e, CFG)
        memory, puts = CONVERSATION.apply(memory, e, CFG)
        messages += [p.item for p in puts if p.table == "messages"]
    return rem, memory, messages


def reminder_at(events: list[Event], at: Any) -> Event:
    rem, _, _ = both(events)
    ((appointment, plan), *_) = due_reminders(rem, at)
    return reminder_event(rem, appointment, plan, at).with_seq(len(events) + 1)


def test_a_reminder_that_stands_is_a_message_of_the_customers_last_session() -> None:
    booked = [message(1, T0), confirmed(2, T0, WEEK_AHEAD)]
    reminder = reminder_at(booked, DAY_BEFORE)
    rem, memory, messages = both([*booked, reminder])
    assert reminder_stands(rem, reminder.eventId)
    shown = messages[-1]
    assert shown["messageId"] == reminder.eventId and shown["type"] == "agent" and shown["content"] == reminder.payload.content
    assert shown["metadata"]["kind"] == "reminder" and shown["metadata"]["author"] == "ai"
    assert shown["metadata"]["appointmentId"] == "a1" and shown["sessionId"] == memory["sessionContext"]["sessionId"]
    assert active_session(memory) is None or reminder.eventId not in {t["eventId"] for t in active_session(memory)["lastMessages"]}


def test_while_the_customer_is_talking_the_reminder_is_a_turn_the_model_sees() -> None:
    booked = [message(1, T0), confirmed(2, T0, WEEK_AHEAD), message(3, DAY_BEFORE - timedelta(minutes=5), "Bună, o întrebare")]
    reminder = reminder_at(booked, DAY_BEFORE)
    _, memory, _ = both([*booked, reminder])
    last = active_session(memory)["lastMessages"][-1]
    assert last == {"role": "agent", "content": reminder.payload.content, "timestamp": "2026-12-01T08:00:00.000Z",
                    "eventId": reminder.eventId}


def test_a_refused_reminder_is_not_shown() -> None:
    booked = [message(1, T0), confirmed(2, T0, WEEK_AHEAD)]
    reminder = reminder_at(booked, DAY_BEFORE)
    stop = event("CustomerOptedOut", 3, T0 + timedelta(hours=1), sourceEventId="m", by="customer", keyword="stop")
    cancel = event("AppointmentCancelled", 3, T0 + timedelta(hours=1), appointmentId="a1", by="customer")
    for raced in (stop, cancel):
        rem, _, messages = both([*booked, raced, reminder.with_seq(4)])
        assert not reminder_stands(rem, reminder.eventId) and reminder.eventId not in {m["messageId"] for m in messages}
    late = reminder_event(both(booked)[0], *due_reminders(both(booked)[0], DAY_BEFORE)[0], utc(2026, 12, 2, 8)).with_seq(3)
    rem, _, messages = both([*booked, late])  # appended at the start: never sent
    assert not reminder_stands(rem, late.eventId) and [m["metadata"].get("kind") for m in messages].count("reminder") == 0


STARTS = (WEEK_AHEAD, "2026-12-03T12:00:00+02:00")
REMIND = st.tuples(st.just("remind"), st.integers(0, 50))
Op = st.one_of(st.tuples(st.just("confirm"), st.integers(0, 1)), st.tuples(st.sampled_from(["cancel", "propose", "out", "in"]), st.just(0)),
               REMIND, REMIND)
MONDAY = utc(2026, 11, 30, 8)  # two and three days before STARTS


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(Op, st.integers(3, 12)), min_size=4, max_size=16))
def test_the_conversation_shows_exactly_the_reminders_the_reminders_fold_let_stand(ops: list[tuple[tuple[str, int], int]]) -> None:
    events: list[Event] = [message(1, MONDAY), confirmed(2, MONDAY, STARTS[0])]
    rem, memory, _ = both(events)
    snapshots, used = [rem], set()
    at = MONDAY
    for (kind, n), hours in ops:
        at += timedelta(hours=hours)
        seq = len(events) + 1
        if kind == "confirm":
            e = confirmed(seq, at, STARTS[n])
        elif kind in ("cancel", "propose"):
            extra = {"at": "2026-12-04T10:00:00+02:00"} if kind == "propose" else {}
            e = event("AppointmentCancelled" if kind == "cancel" else "AppointmentProposed", seq, at, appointmentId="a1",
                      by="owner", **extra)
        elif kind in ("out", "in"):
            e = event("CustomerOptedOut" if kind == "out" else "CustomerOptedIn", seq, at, sourceEventId=f"m{seq}",
                      by="customer", keyword=kind)
        else:  # a timer appends from the item it read then (maybe stale), once per reminder
            seen = snapshots[n % len(snapshots)]
            due = [(a, p) for a in seen["appointments"].values() for p in a.get("planned", []) if p["dueAt"] <= iso(at)
                   and reminder_key(a["appointmentId"], p["minutes"], a["startsAt"]) not in used]
            if not due:
                continue
            appointment, plan = due[0]
            used.add(reminder_key(appointment["appointmentId"], plan["minutes"], appointment["startsAt"]))
            e = reminder_event(seen, appointment, plan, at).with_seq(seq)
        events.append(e)
        rem, _ = REMINDERS.apply(rem, e, CFG)
        snapshots.append(rem)
        memory, puts = CONVERSATION.apply(memory, e, CFG)
        if e.type == "ReminderSent":
            shown = any(p.table == "messages" and p.item["messageId"] == e.eventId for p in puts)
            assert shown == reminder_stands(rem, e.eventId), (e.payload, rem["appointments"])


async def test_the_owner_sees_the_reminder_in_the_inbox_transcript(moto_gateway: MotoGateway) -> None:
    gw, biz, user = moto_gateway, moto_gateway.business, "ana"
    day = (datetime.now(timezone.utc) + timedelta(days=10)).date()
    await gw.d.ddb.put_item(TableName=gw.d.settings.tables.business_info, Item=to_item({
        "businessId": biz, "name": "Salon", "businessType": "salon", "language": "ro", "timezone": "Europe/Bucharest",
        "slotMinutes": 30, "bookingCapacity": 1, "settings": {"remindBeforeMinutes": [1440]},
        "openingHours": {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}))
    store = gw.d.store
    processor = ConversationProcessor(store, ProjectionStore(gw.d.ddb, gw.d.settings.tables),
                                      BusinessDirectory(gw.d.ddb, gw.d.settings.tables), OfflineResponder(), _no_publish)

    async def drain() -> dict[str, Any]:
        events = await store.read(f"{biz}#{user}")
        for event in events:
            await processor.handle(event)
        return await processor._states.load(events[-1])  # noqa: SLF001

    asked = (await store.append(new_event("MessageReceived", business_id=biz, user_id=user, channel="rest",
                                           payload={"content": "Mă puteți programa pentru tuns?", "replyTo": {"to": user}}))).event
    await store.append(request_event(asked, {"at": f"{day.isoformat()}T10:00:00+02:00", "service": "tuns"}))  # type: ignore[arg-type]
    await drain()
    done = await gw.http.post(f"/v1/businesses/{biz}/appointments/{appointment_id(asked.eventId)}/confirm",
                              headers={"Authorization": f"Bearer {gw.api_key}"})
    assert done.status_code == 202, done.text
    states = await drain()
    appointment = states["reminders"]["appointments"][appointment_id(asked.eventId)]
    (plan,) = appointment["planned"]  # a day before, at 10:00 local
    reminder = reminder_event(states["reminders"], appointment, plan, datetime.fromisoformat(plan["dueAt"].replace("Z", "+00:00")))
    await store.append(reminder)
    states = await drain()
    assert reminder_stands(states["reminders"], reminder.eventId)

    await sign_in(gw.http, gw.api_key)
    sid = states["conversation"]["sessionContext"]["sessionId"]
    page = await gw.http.get(f"/inbox/conversations/{sid}")
    assert page.status_code == 200
    text = page.text.replace("&#34;", '"').replace("&#39;", "'").replace("&#8222;", "„").replace("&#8221;", "”")
    shown = re.search(r'<div class="msg ai"[^>]*><span class="meta">AI · [^<]* · reminder</span>([^<]+)', text)
    assert shown is not None and shown.group(1) == reminder.payload.content, text


async def _no_publish(event: Event, first: bool = False) -> None:
    pass
