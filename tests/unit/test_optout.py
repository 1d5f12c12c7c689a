"""A customer who says stop: the words and vendor signals, the fold (no nudge from then on,
remembered across sessions, shown on the session), and the confirmation the customer gets."""

from __future__ import annotations

import pytest

from agentstream.events import new_event
from agentstream.projections import optout
from agentstream.projections.conversation import active_session, apply, empty_memory
from agentstream.projections.optout import opted_out
from agentstream.projections.context import ReplyContext
from agentstream.streams.reply_policy import OPT_MODEL, canned_answer
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
