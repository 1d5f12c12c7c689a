"""The business's closed days (`closedDays` holidays) and the two timers: no nudge on a closed day
(it waits for the next open stretch, so in practice none), and a reminder whose time falls on one
goes out at the end of the last open stretch before it, as on a weekday without hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import active_session, apply, empty_memory
from agentstream.projections.nudge import Window, window
from agentstream.projections.reminders import due_time
from agentstream.projections.timecontext import _intervals
from agentstream.streams.reply_policy import fold_config
from tests.unit.test_nudge import SALON, T0, ctx, msg, nudge

BUC = "Europe/Bucharest"
TUESDAY = "2026-11-24"  # T0 is Tuesday 10:00 local
HOLIDAY = {TUESDAY: "Ziua salonului"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def nudging(closed: dict[str, str], idle: int = 600) -> FoldConfig:
    return FoldConfig(idle_minutes=idle, timezone=BUC, opening_hours=SALON, nudge_after_minutes=30, language="ro",
                      closed_days=closed)


def test_the_fold_config_reads_closed_days_in_both_forms() -> None:
    info = {"businessId": "b", "closedDays": ["2026-12-26", {"date": "2026-12-25", "name": "Crăciun"}, 7]}
    assert fold_config(info, 60).closed_days == {"2026-12-26": "", "2026-12-25": "Crăciun"}


def test_no_nudge_on_a_closed_day_it_waits_for_the_next_open_day() -> None:
    assert window(ctx(T0), nudging({})) == Window(utc(2026, 11, 24, 8, 30), utc(2026, 11, 24, 11, 0))
    assert window(ctx(T0), nudging(HOLIDAY)) is None  # the session expires before Wednesday's opening
    long_idle = nudging(HOLIDAY, idle=2000)
    assert window(ctx(T0), long_idle) == Window(utc(2026, 11, 25, 7, 0), utc(2026, 11, 25, 11, 0))  # Wed 09:00 local
    assert window(ctx(T0), nudging({"2026-11-25": ""})).start == utc(2026, 11, 24, 8, 30)  # another day: as before


def test_a_session_on_a_closed_day_has_no_nudge_due_and_a_late_timers_nudge_is_refused() -> None:
    cfg = nudging(HOLIDAY)
    first = apply(empty_memory("b", "u"), msg(1, 0), cfg)
    (session,) = first.sessions
    assert "nudgeDue" not in session and session["nextDueAt"] == session["expiresAt"]
    sid = active_session(first.memory)["sessionId"]
    refused = apply(first.memory, nudge(2, 31, sid), cfg)  # appended by a timer that read an older item
    assert refused.messages == [] and refused.sessions[0]["nudge"]["reason"] == "closed"
    assert apply(first.memory, nudge(2, 31, sid), nudging({})).sessions[0]["nudge"]["status"] == "sent"


REMINDING = FoldConfig(timezone=BUC, opening_hours=SALON, language="ro", remind_before_minutes=(1440, 120))


def test_a_reminder_due_on_a_closed_day_goes_at_the_end_of_the_last_open_day_before() -> None:
    wednesday_10 = utc(2026, 11, 25, 8)
    assert due_time(wednesday_10, 1440, REMINDING) == utc(2026, 11, 24, 8)  # Tuesday 10:00, open
    closed = FoldConfig(timezone=BUC, opening_hours=SALON, language="ro", closed_days=HOLIDAY)
    assert due_time(wednesday_10, 1440, closed) == utc(2026, 11, 23, 16)  # Monday 18:00, as for a Sunday
    two_days = FoldConfig(timezone=BUC, opening_hours=SALON, closed_days={TUESDAY: "", "2026-11-23": ""})
    assert due_time(wednesday_10, 1440, two_days) == utc(2026, 11, 21, 12)  # Saturday 14:00 (Sunday has no hours)
    assert due_time(wednesday_10, 120, closed) == utc(2026, 11, 23, 16)  # 08:00 Wednesday is before opening too


def _open(at: datetime, cfg: FoldConfig) -> bool:
    local = at.astimezone(ZoneInfo(BUC)).replace(tzinfo=None)
    days = (local.date() - timedelta(days=1), local.date())
    return any(s <= local < e for d in days if d.isoformat() not in cfg.closed_days for s, e in _intervals(d, SALON))


@settings(max_examples=150, deadline=None)
@given(start=st.datetimes(datetime(2026, 11, 2), datetime(2026, 12, 20)).map(lambda d: d.replace(tzinfo=timezone.utc)),
       minutes=st.integers(1, 3 * 1440),
       closed=st.sets(st.integers(0, 60), max_size=6))
def test_a_reminder_never_falls_on_a_closed_day_nor_after_its_time(start: datetime, minutes: int, closed: set[int]) -> None:
    days = {(date(2026, 10, 25) + timedelta(days=n)).isoformat(): "" for n in closed}
    cfg = FoldConfig(timezone=BUC, opening_hours=SALON, closed_days=days)
    due = due_time(start, minutes, cfg)
    assert due <= start - timedelta(minutes=minutes)
    assert _open(due, cfg), "moved into an open stretch (closed days have no open stretch)"
