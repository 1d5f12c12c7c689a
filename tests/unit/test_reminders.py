"""Reminders before a confirmed appointment: when they are due (never at night: the evening
before), at most one of each per appointment decided by the fold, dropped when the appointment
moves or is cancelled or the customer opted out, a template past WhatsApp's window, and the
customer's answer to one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from agentstream.events import Event, new_event
from agentstream.projections.appointment_answers import answer_of
from agentstream.projections.base import FoldConfig
from agentstream.projections.reminders import (
    REMINDERS, due_reminders, due_time, missed_reminders, remind_before, reminder_stands, settings_error,
)
from agentstream.streams.reminder_timer import missed_event, reminder_event

BUC = "Europe/Bucharest"
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SALON = {d: [["09:00", "19:00"]] for d in WEEK[:5]} | {"sat": [["09:00", "15:00"]], "sun": []}
TEMPLATES = {"reminder": {"whatsapp": {"ro": {"name": "reminder_programare", "params": ["when", "service"]}}}}
CFG = FoldConfig(timezone=BUC, opening_hours=SALON, language="ro", remind_before_minutes=(1440, 120), templates=TEMPLATES)
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)  # Monday 10:00 in Bucharest


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize("starts, minutes, due", [
    (utc(2026, 12, 2, 8), 1440, utc(2026, 12, 1, 8)),        # Wed 10:00 local, a day before: Tue 10:00, open
    (utc(2026, 12, 2, 8), 120, utc(2026, 12, 1, 16)),        # Wed 10:00, 2 h before is 08:00, closed: Tue 18:00
    (utc(2026, 12, 2, 7), 120, utc(2026, 12, 1, 16)),        # Wed 09:00, 2 h before is 07:00: the evening before
    (utc(2026, 11, 30, 8), 1440, utc(2026, 11, 28, 12)),     # Mon 10:00, a day before is Sunday (closed): Sat 14:00
    (utc(2026, 12, 2, 14), 120, utc(2026, 12, 2, 12)),       # Wed 16:00, 2 h before: 14:00, open
])
def test_when_a_reminder_is_due(starts: datetime, minutes: int, due: datetime) -> None:
    assert due_time(starts, minutes, CFG) == due


def test_a_business_without_opening_hours_is_reminded_at_the_exact_time() -> None:
    cfg = FoldConfig(timezone=BUC, remind_before_minutes=(120,))
    assert due_time(utc(2026, 12, 2, 5), 120, cfg) == utc(2026, 12, 2, 3)


def event(kind: str, seq: int, when: datetime, channel: str = "whatsapp", **payload: Any) -> Event:
    return new_event(kind, business_id="salon", user_id="u", channel=channel, occurred_at=when, payload=payload,
                     event_id=f"{kind}-{seq}").with_seq(seq)


def message(seq: int, at: datetime, text: str = "Bună, aș vrea o programare") -> Event:
    return event("MessageReceived", seq, at, content=text, replyTo={"phone_number_id": "PN1", "to": "40711"})


def confirmed(seq: int, at: datetime, starts_local: str, appointment: str = "a1") -> Event:
    return event("AppointmentConfirmed", seq, at, appointmentId=appointment, by="owner", at=starts_local, minutes=30,
                 service="tuns", content="Confirmat", deliverTo={"phone_number_id": "PN1", "to": "40711"})


def fold(events: list[Event], cfg: FoldConfig = CFG) -> dict[str, Any]:
    state = REMINDERS.empty("salon", "u")
    for e in events:
        state, puts = REMINDERS.apply(state, e, cfg)
        assert puts == []  # the state item is the only row: the worker writes it
    return state


def sent(state: dict[str, Any], at: datetime) -> Event:
    ((appointment, plan),) = due_reminders(state, at)[:1]
    return reminder_event(state, appointment, plan, at).with_seq(state["lastSeq"] + 1)


WEEK_AHEAD = "2026-12-02T10:00:00+02:00"  # Wednesday 10:00, confirmed on the Monday before


def test_a_confirmed_appointment_plans_one_reminder_per_setting_and_is_in_the_due_index() -> None:
    state = fold([message(1, T0), confirmed(2, T0 + timedelta(minutes=5), WEEK_AHEAD)])
    planned = state["appointments"]["a1"]["planned"]
    assert [(p["minutes"], p["dueAt"]) for p in planned] == [(1440, "2026-12-01T08:00:00.000Z"),
                                                             (120, "2026-12-01T16:00:00.000Z")]
    assert state["nextDueAt"] == "2026-12-01T08:00:00.000Z" and "dueShard" in state
    assert planned[0]["template"] == {"name": "reminder_programare", "language": "ro", "params": ["02.12.2026 10:00", "tuns"]}


def test_each_reminder_stands_once_and_the_due_index_moves_on() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])
    at = utc(2026, 12, 1, 8)
    first = sent(state, at)
    assert first.payload.send.window == "closed" and first.payload.send.template.name == "reminder_programare"
    after, _ = REMINDERS.apply(state, first, CFG)
    assert reminder_stands(after, first.eventId)
    assert after["nextDueAt"] == "2026-12-01T16:00:00.000Z" and due_reminders(after, at) == []
    again, _ = REMINDERS.apply(after, first.with_seq(first.seq + 1), CFG)  # a second timer's copy, if it got in
    assert not reminder_stands(again, first.eventId)
    last = sent(after, utc(2026, 12, 1, 16))
    done, _ = REMINDERS.apply(after, last, CFG)
    assert reminder_stands(done, last.eventId) and "nextDueAt" not in done and "dueShard" not in done  # out of the index


def test_a_reminder_before_its_time_does_not_stand() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])
    ((appointment, plan), _) = due_reminders(state, utc(2026, 12, 1, 16))
    early = reminder_event(state, appointment, plan, utc(2026, 11, 30, 8)).with_seq(3)
    assert not reminder_stands(REMINDERS.apply(state, early, CFG)[0], early.eventId)


@pytest.mark.parametrize("kind", ["AppointmentCancelled", "AppointmentProposed", "AppointmentNoShow"])
def test_a_moved_or_cancelled_appointment_drops_its_pending_reminders(kind: str) -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])
    pending = sent(state, utc(2026, 12, 1, 8))
    extra = {"at": "2026-12-03T10:00:00+02:00"} if kind == "AppointmentProposed" else {}
    dropped = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD),
                    event(kind, 3, T0 + timedelta(hours=1), appointmentId="a1", by="owner" if kind != "AppointmentCancelled" else "customer", **extra)])
    assert "nextDueAt" not in dropped and dropped["appointments"]["a1"]["planned"] == []
    raced = pending.with_seq(4)
    assert not reminder_stands(REMINDERS.apply(dropped, raced, CFG)[0], raced.eventId)


def test_an_appointment_confirmed_at_another_time_is_reminded_for_the_new_time() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD), confirmed(3, T0, "2026-12-04T12:00:00+02:00")])
    assert [p["dueAt"] for p in state["appointments"]["a1"]["planned"]] == ["2026-12-03T10:00:00.000Z",
                                                                           "2026-12-04T08:00:00.000Z"]


def test_no_reminder_whose_time_passed_before_the_confirmation() -> None:
    state = fold([message(1, utc(2026, 12, 2, 6)), confirmed(2, utc(2026, 12, 2, 6), WEEK_AHEAD)])  # 08:00 for 10:00
    assert state["appointments"]["a1"]["planned"] == [] and "nextDueAt" not in state


def test_an_opted_out_customer_gets_none_until_they_opt_in() -> None:
    stop = event("CustomerOptedOut", 2, T0, sourceEventId="m", by="customer", keyword="stop")
    state = fold([message(1, T0), stop, confirmed(3, T0, WEEK_AHEAD)])
    assert state["appointments"]["a1"]["planned"] == [] and "nextDueAt" not in state
    back = event("CustomerOptedIn", 4, T0, sourceEventId="m2", by="customer", keyword="start")
    assert fold([message(1, T0), stop, confirmed(3, T0, WEEK_AHEAD), back])["nextDueAt"] == "2026-12-01T08:00:00.000Z"


def test_past_whatsapps_window_without_a_template_no_reminder_is_planned_inside_it_free_text() -> None:
    bare = FoldConfig(timezone=BUC, opening_hours=SALON, language="ro", remind_before_minutes=(1440, 120))
    assert fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)], bare)["appointments"]["a1"]["planned"] == []
    soon = fold([message(1, utc(2026, 12, 1, 9)), confirmed(2, utc(2026, 12, 1, 9), WEEK_AHEAD)], bare)
    (plan,) = soon["appointments"]["a1"]["planned"]  # the 120-minute one, Tue 18:00: inside 24 h of the message
    assert plan["minutes"] == 120 and "template" not in plan
    assert reminder_event(soon, soon["appointments"]["a1"], plan, utc(2026, 12, 1, 16)).payload.send.window == "open"
    sms = fold([event("MessageReceived", 1, T0, "sms", content="salut", replyTo={"to": "+4071"}),
                event("AppointmentConfirmed", 2, T0, "sms", appointmentId="a1", by="owner", at=WEEK_AHEAD, minutes=30)], bare)
    assert len(sms["appointments"]["a1"]["planned"]) == 2  # no window on SMS


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(4)), dup=st.integers(0, 3))
def test_at_most_one_of_each_whatever_the_timers_appended(order: list[int], dup: int) -> None:
    base = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])
    day, evening = (utc(2026, 12, 1, 8), utc(2026, 12, 1, 16))
    plans = {p["minutes"]: p for p in base["appointments"]["a1"]["planned"]}
    made = [reminder_event(base, base["appointments"]["a1"], plans[m], at) for m, at in ((1440, day), (120, evening))]
    appended = [made[i % 2] for i in order] + [made[dup % 2]]  # copies from several timers, in any order
    state, stood = base, []
    for seq, e in enumerate(appended, start=3):
        state, _ = REMINDERS.apply(state, e.with_seq(seq), CFG)
        if reminder_stands(state, e.eventId):
            stood.append(e.payload.minutesBefore)
    assert sorted(stood) == [120, 1440]


@pytest.mark.parametrize("text, answer", [("nu mai pot", "cancel"), ("Nu mai pot, scuze!", "cancel"),
                                          ("I can't make it", "cancel"), ("confirm", "yes"), ("da, confirm", "yes"),
                                          ("nu mai pot să vă spun cât mă bucur", None)])
def test_the_answer_to_a_reminder_is_read_as_for_a_proposal(text: str, answer: str | None) -> None:
    assert answer_of(text) == answer


def test_the_settings() -> None:
    assert remind_before({"settings": {"remindBeforeMinutes": [120, 1440, 120]}}) == (1440, 120)
    assert remind_before({}) == ()
    assert settings_error({"businessId": "b", "settings": {"remindBeforeMinutes": [1440, 120]}}) is None
    assert "remindBeforeMinutes" in settings_error({"businessId": "b", "settings": {"remindBeforeMinutes": "1440"}})
    assert "remindBeforeMinutes" in settings_error({"businessId": "b", "settings": {"remindBeforeMinutes": [0]}})


def test_a_customer_who_writes_again_reopens_the_window_for_the_reminders_after() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD), message(3, utc(2026, 12, 1, 9), "Mulțumesc!")])
    day, evening = state["appointments"]["a1"]["planned"]
    assert day["windowUntil"] == evening["windowUntil"] == "2026-12-02T09:00:00.000Z"
    assert reminder_event(state, state["appointments"]["a1"], evening, utc(2026, 12, 1, 16)).payload.send.window == "open"


# ---- never at or after the appointment's start -------------------------------------------------

START = utc(2026, 12, 2, 8)  # WEEK_AHEAD in UTC


def test_a_reminder_still_planned_at_the_start_is_missed_not_sent_and_leaves_the_due_index() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])  # due Tue 08:00 and Tue 16:00 UTC
    assert due_reminders(state, START) == [] and due_reminders(state, START + timedelta(hours=1)) == []
    late = missed_reminders(state, START)  # the timer was down from before the first one to the start
    assert [p["minutes"] for _, p in late] == [1440, 120]
    missed = missed_event(state, *late[0], START + timedelta(minutes=3)).with_seq(3)
    after, _ = REMINDERS.apply(state, missed, CFG)
    assert "nextDueAt" not in after and "dueShard" not in after  # the due index stops returning the customer
    assert due_reminders(after, START + timedelta(days=1)) == missed_reminders(after, START + timedelta(days=1)) == []
    assert sorted(after["appointments"]["a1"]["missed"]) == [f"a1|{m}|2026-12-02T08:00:00.000Z" for m in (120, 1440)]
    assert after["appointments"]["a1"]["sent"] == {}


def test_a_reminder_appended_at_or_after_the_start_does_not_stand_and_is_not_planned_again() -> None:
    state = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD)])
    ((appointment, plan), _) = due_reminders(state, utc(2026, 12, 1, 16))
    late = reminder_event(state, appointment, plan, START).with_seq(3)  # a timer that reads a stale item
    after, _ = REMINDERS.apply(state, late, CFG)
    assert not reminder_stands(after, late.eventId) and "nextDueAt" not in after
    again = fold([message(1, T0), confirmed(2, T0, WEEK_AHEAD), message(3, START + timedelta(minutes=5), "Am ajuns")])
    assert again["appointments"]["a1"]["planned"] == [] and "nextDueAt" not in again  # the window reopened: still none


@settings(max_examples=80, deadline=None)
@given(minutes=st.lists(st.integers(1, 3 * 1440), min_size=1, max_size=3, unique=True),
       confirmed_before=st.integers(0, 4 * 1440), down_from=st.integers(0, 5 * 1440), down_for=st.integers(0, 5 * 1440),
       late_by=st.integers(0, 600))
def test_no_reminder_is_ever_sent_at_or_after_its_start_whatever_the_timers_outage(
        minutes: list[int], confirmed_before: int, down_from: int, down_for: int, late_by: int) -> None:
    """A timer with rounds every 10 minutes that stops for a while (maybe across the start), and
    one more round `late_by` minutes after the start: every reminder that stands went out before
    the start, and after that round the customer is out of the due index."""
    cfg = FoldConfig(timezone=BUC, opening_hours=SALON, language="ro", remind_before_minutes=tuple(sorted(minutes, reverse=True)),
                     templates=TEMPLATES)
    at = START - timedelta(minutes=confirmed_before)
    state = fold([message(1, at), confirmed(2, at, WEEK_AHEAD)], cfg)
    rounds = [at + timedelta(minutes=10 * n) for n in range(int((START - at).total_seconds() // 600) + 1)]
    rounds = [r for r in rounds if not down_from <= (r - at).total_seconds() / 60 < down_from + down_for]
    seq, stood = 3, []
    for now in [*rounds, START + timedelta(minutes=late_by)]:
        made = [reminder_event(state, a, p, now) for a, p in due_reminders(state, now)]
        made += [missed_event(state, a, p, now) for a, p in missed_reminders(state, now)]
        for e in made:
            state, _ = REMINDERS.apply(state, e.with_seq(seq), cfg)
            seq += 1
            if reminder_stands(state, e.eventId):
                stood.append(e)
    assert all(e.occurredAt < START for e in stood)
    assert len({e.payload.minutesBefore for e in stood}) == len(stood)
    assert "nextDueAt" not in state  # nothing pending any more: out of the due index
    assert due_reminders(state, START) == missed_reminders(state, START) == []
