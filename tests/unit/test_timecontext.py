"""Time context in the business's time zone: lunch breaks, closed days, past midnight, DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from agentstream.projections.timecontext import describe, time_context

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SALON = {d: [["09:00", "13:00"], ["14:00", "19:00"]] for d in WEEK[:5]} | {"sat": [["09:00", "15:00"]], "sun": []}
RESTAURANT = {d: [["12:00", "02:00"]] for d in WEEK}
BAR = {"sat": [["22:00", "04:00"]]}
BUC = "Europe/Bucharest"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "instant, hours, local, weekday, part, is_open, closes, opens",
    [
        # Tuesday 24 Nov 2026, 10:30 UTC = 12:30 in Bucharest (UTC+2): open until the lunch break
        (utc(2026, 11, 24, 10, 30), SALON, "12:30", "tuesday", "afternoon", True, "13:00", None),
        # 13:30 local: lunch break, reopens 14:00 today
        (utc(2026, 11, 24, 11, 30), SALON, "13:30", "tuesday", "afternoon", False, None, ("tuesday", "14:00", 0)),
        # 18:59 local: open for one more minute; 19:00: closed until tomorrow 09:00
        (utc(2026, 11, 24, 16, 59), SALON, "18:59", "tuesday", "evening", True, "19:00", None),
        (utc(2026, 11, 24, 17, 0), SALON, "19:00", "tuesday", "evening", False, None, ("wednesday", "09:00", 1)),
        # Friday 08:00 local: morning, opens at 09:00 today
        (utc(2026, 11, 27, 6, 0), SALON, "08:00", "friday", "morning", False, None, ("friday", "09:00", 0)),
        # Sunday 29 Nov 11:00 local: closed all day, opens Monday 09:00
        (utc(2026, 11, 29, 9, 0), SALON, "11:00", "sunday", "morning", False, None, ("monday", "09:00", 1)),
        # Saturday 23:55 local: night, closed; Sunday is closed, so Monday
        (utc(2026, 11, 28, 21, 55), SALON, "23:55", "saturday", "night", False, None, ("monday", "09:00", 2)),
        # Restaurant, Wednesday 01:30 local: inside Tuesday's 12:00–02:00
        (utc(2026, 11, 24, 23, 30), RESTAURANT, "01:30", "wednesday", "night", True, "02:00", None),
        # 02:00 local: just closed, opens 12:00 today
        (utc(2026, 11, 25, 0, 0), RESTAURANT, "02:00", "wednesday", "night", False, None, ("wednesday", "12:00", 0)),
        # 22:00 local: evening ends, night starts; open until 02:00 (tomorrow)
        (utc(2026, 11, 25, 20, 0), RESTAURANT, "22:00", "wednesday", "night", True, "02:00", None),
        # DST starts in Bucharest on Sunday 29 Mar 2026 (03:00 → 04:00):
        # 23:30 UTC on Saturday is 01:30 local (UTC+2), inside Saturday's interval
        (utc(2026, 3, 28, 23, 30), RESTAURANT, "01:30", "sunday", "night", True, "02:00", None),
        # 00:30 UTC is 02:30 local (still UTC+2): closed, opens at noon
        (utc(2026, 3, 29, 0, 30), RESTAURANT, "02:30", "sunday", "night", False, None, ("sunday", "12:00", 0)),
        # 01:00 UTC: the clock jumps to 04:00 local
        (utc(2026, 3, 29, 1, 0), RESTAURANT, "04:00", "sunday", "night", False, None, ("sunday", "12:00", 0)),
        # 09:00 UTC is 12:00 local (UTC+3): just opened
        (utc(2026, 3, 29, 9, 0), RESTAURANT, "12:00", "sunday", "afternoon", True, "02:00", None),
        # Monday after DST: 06:30 UTC is 09:30 local, the salon is open (in winter it would be 08:30)
        (utc(2026, 3, 30, 6, 30), SALON, "09:30", "monday", "morning", True, "13:00", None),
        (utc(2026, 3, 27, 6, 30), SALON, "08:30", "friday", "morning", False, None, ("friday", "09:00", 0)),
        # DST ends on Sunday 25 Oct 2026 (04:00 → 03:00): 03:30 local happens twice, open both times
        (utc(2026, 10, 25, 0, 30), BAR, "03:30", "sunday", "night", True, "04:00", None),
        (utc(2026, 10, 25, 1, 30), BAR, "03:30", "sunday", "night", True, "04:00", None),
        # 02:30 UTC is 04:30 local (UTC+2): the bar has closed, opens next Saturday
        (utc(2026, 10, 25, 2, 30), BAR, "04:30", "sunday", "night", False, None, ("saturday", "22:00", 6)),
        # 10:30 UTC is 12:30 local (UTC+2) on the day DST ends
        (utc(2026, 10, 25, 10, 30), RESTAURANT, "12:30", "sunday", "afternoon", True, "02:00", None),
    ],
)
def test_time_context(instant, hours, local, weekday, part, is_open, closes, opens) -> None:
    tc = time_context(instant, BUC, hours)
    assert (tc.local_time, tc.weekday, tc.part_of_day, tc.is_open, tc.closes_at) == (local, weekday, part, is_open, closes)
    got = (tc.opens_next["day"], tc.opens_next["time"], tc.opens_next["in_days"]) if tc.opens_next else None
    assert got == opens
    assert tc.timezone == BUC


def test_local_date_is_the_business_date() -> None:
    tc = time_context(utc(2026, 12, 31, 22, 30), BUC, SALON)
    assert (tc.date, tc.weekday, tc.local_time) == ("2027-01-01", "friday", "00:30")


def test_back_to_back_intervals_close_at_the_end_of_the_chain() -> None:
    hours = {"mon": [["09:00", "13:00"], ["13:00", "18:00"]]}
    assert time_context(utc(2026, 11, 23, 9), "UTC", hours).closes_at == "18:00"
    all_day = {d: [["00:00", "00:00"]] for d in WEEK}  # 24 hours every day
    tc = time_context(utc(2026, 11, 23, 9), "UTC", all_day)
    assert tc.is_open and tc.closes_at is None and tc.opens_next is None


def test_bad_input_falls_back_instead_of_failing() -> None:
    tc = time_context(utc(2026, 11, 24, 10), "Mars/Olympus", {"tue": [["9:00", "18:00"], ["bad"], ["x", "y"]]})
    assert (tc.timezone, tc.local_time, tc.is_open, tc.closes_at) == ("UTC", "10:00", True, "18:00")
    naive = time_context(datetime(2026, 11, 24, 10, 30), BUC, SALON)
    assert naive.local_time == "12:30", "a naive instant is UTC"


def test_no_hours_means_closed_with_no_next_opening() -> None:
    tc = time_context(utc(2026, 11, 24, 10), "UTC", {})
    assert not tc.is_open and tc.opens_next is None and tc.closes_at is None


def test_describe_speaks_both_languages() -> None:
    lunch = time_context(utc(2026, 11, 24, 11, 30), BUC, SALON)
    assert describe(lunch, "ro").startswith("Acum este 13:30 (după-amiază), marți")
    assert "Suntem închiși acum; deschidem azi la 14:00." in describe(lunch, "ro")
    assert describe(lunch, "en").startswith("It is 13:30 (afternoon) on Tuesday")
    assert "We are closed now; we open today at 14:00." in describe(lunch, "en")
    sunday = time_context(utc(2026, 11, 28, 21, 55), BUC, SALON)
    assert "deschidem luni la 09:00" in describe(sunday, "ro") and "we open on Monday at 09:00" in describe(sunday)
    open_ = time_context(utc(2026, 11, 24, 23, 30), BUC, RESTAURANT)
    assert "Suntem deschiși până la 02:00." in describe(open_, "ro") and "We are open until 02:00." in describe(open_, "en")


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc)))
def test_open_and_next_opening_agree_with_a_minute_by_minute_walk(at: datetime) -> None:
    """Closed now → still closed one minute before `opens_next`, open at it; open → open one
    minute before `closes_at` and closed at it (for the salon, whose intervals are short)."""
    tc = time_context(at, BUC, SALON)
    assert (tc.closes_at is not None) == tc.is_open and (tc.opens_next is None) == tc.is_open
    target = tc.closes_at if tc.is_open else tc.opens_next["time"]
    step = at.replace(second=0, microsecond=0)
    while time_context(step + timedelta(minutes=15), BUC, SALON).is_open == tc.is_open:  # coarse…
        step += timedelta(minutes=15)
    while (now := time_context(step := step + timedelta(minutes=1), BUC, SALON)).is_open == tc.is_open:  # …then fine
        pass
    assert now.local_time == target
    if not tc.is_open:
        assert now.weekday == tc.opens_next["day"]
