"""A customer who says stop: the words and vendor signals, the fold (no nudge from then on,
remembered across sessions, shown on the session), and the confirmation the customer gets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentstream.adapters.memory_stores import MemoryDirectory
from agentstream.events import new_event
from agentstream.projections import optout
from agentstream.projections.conversation import active_session, apply, empty_memory
from agentstream.projections.optout import opted_out
from agentstream.projections.context import ReplyContext
from agentstream.projections.reminders import REMINDERS
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.reply_policy import OPT_MODEL, canned_answer
from tests.unit.test_dead_letters import T0, Worker
from tests.unit.test_nudge import SALON_CFG, msg, nudge


@pytest.mark.parametrize(("text", "reply_to", "found"), [
    ("STOP", {}, ("out", "stop")), ("stop", {}, ("out", "stop")), (" Stop! ", {}, ("out", "stop")),
    ("dezabonare", {}, ("out", "dezabonare")), ("Dezabonare.", {}, ("out", "dezabonare")),
    ("start", {}, ("in", "start")), ("START", {}, ("in", "start")),
    ("stop the car at 10?", {}, None), ("nu mai pot", {}, None), ("", {}, None),
    ("UNSUBSCRIBE ME PLEASE", {"optOutType": "STOP"}, ("out", "vendor:STOP")),  # Twilio's Advanced Opt-Out
    ("yes", {"optOutType": "START"}, ("in", "vendor:START")),
    ("help", {"optOutType": "HELP"}, None),
])
def test_the_words_and_the_vendors_signals(text: str, reply_to: dict, found: tuple | None) -> None:
    assert optout.change(text, reply_to) == found


def opt(kind: str, seq: int, minutes: float, source: str = "m1"):
    return new_event(kind, business_id="b", user_id="u", channel="websocket", event_id=f"o{seq}",
                     occurred_at=msg(1, minutes).occurredAt,
                     payload={"sourceEventId": source, "by": "customer", "keyword": "stop"}).with_seq(seq)


def test_after_stop_no_nudge_is_due_and_one_appended_anyway_is_refused() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0, text="STOP"), SALON_CFG)
    assert "nudgeDue" in first.sessions[0]
    sid = active_session(first.memory)["sessionId"]
    stopped = apply(first.memory, opt("CustomerOptedOut", 2, 0), SALON_CFG)
    (session,) = stopped.sessions
    assert session["optedOut"] is True and "nudgeDue" not in session  # the owner sees it on the session
    assert opted_out(stopped.memory)
    raced = apply(stopped.memory, nudge(3, 31, sid), SALON_CFG)
    assert raced.messages == [] and raced.sessions[0]["nudge"]["reason"] == "opted out"


def test_stop_holds_for_later_sessions_until_start() -> None:
    memory = apply(empty_memory("b", "u"), msg(1, 0, text="STOP"), SALON_CFG).memory
    memory = apply(memory, opt("CustomerOptedOut", 2, 0), SALON_CFG).memory
    later = apply(memory, msg(3, 120, text="Bună, aveți loc mâine?"), SALON_CFG)  # a new session, two hours later
    new_session = later.sessions[-1]
    assert new_session["optedOut"] is True and "nudgeDue" not in new_session
    back = apply(later.memory, opt("CustomerOptedIn", 4, 121, "m3"), SALON_CFG)
    assert not opted_out(back.memory) and "optedOut" not in back.sessions[0] and "nudgeDue" in back.sessions[0]


def _ctx(text: str, language: str = "ro") -> ReplyContext:
    return ReplyContext(business={}, system_instructions="", rag_entries=[], memory={}, time={}, message=text,
                        language=language, inbound_event_id="m1", facts=[])


def test_the_customer_is_told_without_the_model() -> None:
    answer = canned_answer(_ctx("STOP"))
    assert answer.model == OPT_MODEL and "START" in answer.content
    assert canned_answer(_ctx("start", "en")).content.startswith("Welcome back")
    assert canned_answer(_ctx("Aveți loc mâine?")) is None


def test_the_owner_sees_it_in_the_conversation_list() -> None:
    from datetime import datetime, timezone

    from agentstream.adapters.http.owner_service import conversation_view
    session = {"sessionId": "s", "userId": "u", "status": "active", "optedOut": True, "metadata": {"context": {}}}
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert conversation_view(session, 120, now)["optedOut"] is True
    assert conversation_view({**session, "optedOut": False}, 120, now)["optedOut"] is False


@pytest.mark.parametrize("said, out", [("STOP", True), ("Mulțumesc", False)])
async def test_stop_while_a_person_has_the_conversation_still_opts_out(said: str, out: bool) -> None:
    """A customer who writes STOP while the conversation is handed to a person gets no AI answer
    (the person has it), and is opted out all the same: no nudge once the AI has the conversation
    back, no reminder of an appointment confirmed later."""
    worker = Worker.in_memory()
    always_open = {day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    info = {"businessId": "b", "language": "ro", "openingHours": always_open,
            "settings": {"nudgeAfterMinutes": 30, "remindBeforeMinutes": [1440]}}

    async def publish(reply, first: bool = False) -> None:
        pass

    worker.processor = ConversationProcessor(worker.store, worker.projections, MemoryDirectory({"b": info}),
                                             worker.responder, publish)
    await worker.say("Bună ziua", 0)
    await worker.drain()
    sid = active_session(await worker.memory())["sessionId"]
    assert "nudgeDue" in await worker.projections.session(sid)  # the AI answered: a nudge would be due
    await worker.say("vreau să vorbesc cu cineva", 1)
    await worker.drain()
    assert [e.type for e in await worker.log()][-1] == "HandoffRequested"

    stop = await worker.say(said, 2)
    await worker.drain()
    after_stop = [e for e in await worker.log() if e.seq > stop.seq]
    assert not [e for e in after_stop if e.type == "ReplyGenerated"], "the person has the conversation: no AI answer"
    assert [e.type for e in after_stop] == (["CustomerOptedOut"] if out else [])
    assert opted_out(await worker.memory()) is out

    await worker.store.append(new_event("HandoffReleased", business_id="b", user_id="u", channel="system",
                                        occurred_at=T0 + timedelta(minutes=3), payload={"sessionId": sid, "by": "owner"}))
    await worker.say("Aveți loc săptămâna viitoare?", 4)
    await worker.drain()
    assert [e.type for e in await worker.log()][-1] == "ReplyGenerated"  # the AI has it back
    session = await worker.projections.session(sid)
    assert ("nudgeDue" in session) is not out and bool(session.get("optedOut")) is out

    week_ahead = (T0 + timedelta(days=7)).isoformat()
    await worker.store.append(new_event(
        "AppointmentConfirmed", business_id="b", user_id="u", channel="websocket", occurred_at=T0 + timedelta(minutes=5),
        payload={"appointmentId": "a1", "by": "owner", "at": week_ahead, "minutes": 30, "content": "Confirmat",
                 "deliverTo": {}}))
    await worker.drain()
    (reminders,) = (await worker.projections.load_states([REMINDERS], "b", "u")).values()
    assert bool(reminders["appointments"]["a1"]["planned"]) is not out and ("nextDueAt" in reminders) is not out
