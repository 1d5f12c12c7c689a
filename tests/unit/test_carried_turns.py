"""A message the business sends while no session is live (a proposal, a confirmation, a reminder
the next day) opens the customer's next session's turns, so the model reads what the customer is
answering: at most the last three, none older than a week, each carried once."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings as hsettings, strategies as st

from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import CARRIED, fold
from agentstream.projections.context import ReplyContext
from agentstream.projections.timecontext import time_context
from tests.unit.test_appointment_transcript import PROPOSED, appointment, at, ev
from tests.unit.test_reminder_transcript import DAY_BEFORE, both, reminder_at
from tests.unit.test_reminders import T0, WEEK_AHEAD, confirmed, message

CONFIG = FoldConfig(idle_minutes=60)


def turns(memory: dict) -> list[tuple[str, str]]:
    return [(t["role"], t["content"]) for t in memory["sessionContext"]["lastMessages"]]


def test_a_proposal_sent_after_the_talk_ended_is_the_first_turn_of_the_customers_answer() -> None:
    asked = ev("MessageReceived", 1, 0, content="Mă puteți programa joi la 10?")
    late = appointment("AppointmentProposed", 2, 300, PROPOSED, at="2026-12-03T11:30:00+02:00")  # the session idled out
    answer = ev("MessageReceived", 3, 420, content="Da, e bine. Pot veni cu copilul?")
    memory, _, messages = fold([asked, late, answer], CONFIG, "b", "u")
    assert turns(memory) == [("agent", PROPOSED), ("user", "Da, e bine. Pot veni cu copilul?")]
    context = ReplyContext(business={}, system_instructions="", rag_entries=[], memory=memory,
                           time=time_context(at(420), "Europe/Bucharest", {}), message=answer.payload.content,
                           inbound_event_id=answer.eventId)
    assert [(t["role"], t["content"]) for t in context.earlier_turns()] == [("agent", PROPOSED)]
    assert messages[late.eventId]["sessionId"] != memory["sessionContext"]["sessionId"]  # shown in the talk it followed
    assert "carried" not in memory


def test_a_reminder_sent_with_no_session_live_is_read_with_the_customers_reply() -> None:
    booked = [message(1, T0), confirmed(2, T0, WEEK_AHEAD)]
    reminder = reminder_at(booked, DAY_BEFORE)
    answer = message(4, DAY_BEFORE + timedelta(hours=2), "Nu mai pot veni, scuze.")
    _, memory, _ = both([*booked, reminder, answer])
    assert turns(memory)[-2:] == [("agent", reminder.payload.content), ("user", "Nu mai pot veni, scuze.")]


def test_a_message_older_than_a_week_is_not_carried_and_none_is_carried_twice() -> None:
    old = appointment("AppointmentCancelled", 1, 0, "Programarea a fost anulată.")
    first = ev("MessageReceived", 2, 60 * 24 * 8, content="Bună, aveți loc vineri?")
    memory, _, _ = fold([old, first], CONFIG, "b", "u")
    assert turns(memory) == [("user", "Bună, aveți loc vineri?")]
    recent = appointment("AppointmentDeclined", 3, 60 * 24 * 9, "Nu vă putem primi vineri.")
    again = ev("MessageReceived", 4, 60 * 24 * 9 + 90, content="Dar sâmbătă?")
    later = ev("MessageReceived", 5, 60 * 24 * 10, content="Mai sunt locuri?")
    memory, _, _ = fold([old, first, recent, again, later], CONFIG, "b", "u")
    assert turns(memory) == [("user", "Mai sunt locuri?")]  # the decline went with the session it opened


@given(st.integers(1, 8))
@hsettings(max_examples=20, deadline=None)
def test_at_most_the_last_three_are_carried_in_order(n: int) -> None:
    sent = [appointment("AppointmentDeclined", i + 1, 100 + i, f"Nu vă putem primi ({i}).") for i in range(n)]
    answer = ev("MessageReceived", n + 1, 200, content="Bine, mulțumesc.")
    memory, _, messages = fold(sent, CONFIG, "b", "u")
    assert len(memory["carried"]) == min(n, CARRIED) and len(messages) == n  # each still a message of its own
    memory, _, _ = fold([*sent, answer], CONFIG, "b", "u")
    expected = [("agent", f"Nu vă putem primi ({i}).") for i in range(n)][-CARRIED:]
    assert turns(memory) == [*expected, ("user", "Bine, mulțumesc.")][-4:]
