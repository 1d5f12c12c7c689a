"""Time context in the business's time zone: lunch breaks, closed days, past midnight, DST."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agentstream.projections.timecontext import describe, time_context

SALON = {
    "mon": [["09:00", "13:00"], ["14:00", "19:00"]], "tue": [["09:00", "13:00"], ["14:00", "19:00"]],
    "wed": [["09:00", "13:00"], ["14:00", "19:00"]], "thu": [["09:00", "13:00"], ["14:00", "19:00"]],
    "fri": [["09:00", "13:00"], ["14:00", "19:00"]], "sat": [["09:00", "15:00"]], "sun": [],
}
RESTAURANT = {d: [["12:00", "02:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
BUC = "Europe/Bucharest"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "instant, hours, tz, local, part, is_open, closes, opens",
    [
        # Tuesday 24 Nov 2026, 12:30 in Bucharest (UTC+2): open, lunch break at 13:00
        (utc(2026, 11, 24, 10, 30), SALON, BUC, "12:30", "afternoon", True, "13:00", None),
        # 13:30: lunch break, reopens 14:00 today
        (utc(2026, 11, 24, 11, 30), SALON, BUC, "13:30", "afternoon", False, None, ("tue", "14:00", 0)),
        # Sunday 29 Nov: closed all day, opens Monday 09:00
        (utc(2026, 11, 29, 9, 0), SALON, BUC, "11:00", "morning", False, None, ("mon", "09:00", 1)),
        # Saturday 23:55: night, closed, opens Monday (Sunday closed)
        (utc(2026, 11, 28, 21, 55), SALON, BUC, "23:55", "night", False, None, ("mon", "09:00", 2)),
        # Restaurant at 01:30 on Wednesday: inside Tuesday's 12:00–02:00
        (utc(2026, 11, 25, 23, 30), RESTAURANT, BUC, "01:30", "night", True, "02:00", None),
        # 02:30: closed until 12:00 today
        (utc(2026, 11, 26, 0, 30), RESTAURANT, BUC, "02:30", "night", False, None, ("thu", "12:00", 0)),
        # DST starts in Bucharest on Sunday 29 Mar 2026 (03:00 → 04:00): 08:30 UTC is 11:30 local
        (utc(2026, 3, 29, 8, 30), RESTAURANT, BUC, "11:30", "morning", False, None, ("sun", "12:00", 0)),
        # DST ends on Sunday 25 Oct 2026 (04:00 → 03:00): 10:30 UTC is 12:30 local
        (utc(2026, 10, 25, 10, 30), RESTAURANT, BUC, "12:30", "afternoon", True, "02:00", None),
        # the day before DST starts, 01:30 local (UTC+2) inside Friday's interval
        (utc(2026, 3, 27, 23, 30), RESTAURANT, BUC, "01:30", "night", True, "02:00", None),
    ],
)
def test_time_context(instant, hours, tz, local, part, is_open, closes, opens) -> None:
    tc = time_context(instant, tz, hours)
    assert (tc.local_time, tc.part_of_day, tc.is_open, tc.closes_at) == (local, part, is_open, closes)
    got = (tc.opens_next["day"], tc.opens_next["time"], tc.opens_next["in_days"]) if tc.opens_next else None
    assert got == opens


def test_describe_speaks_both_languages() -> None:
    tc = time_context(utc(2026, 11, 24, 11, 30), BUC, SALON)
    assert "deschidem azi la 14:00" in describe(tc, "ro")
    assert "we open today at 14:00" in describe(tc, "en")


def test_no_hours_means_closed_with_no_next_opening() -> None:
    tc = time_context(utc(2026, 11, 24, 10), "UTC", {})
    assert not tc.is_open and tc.opens_next is None
