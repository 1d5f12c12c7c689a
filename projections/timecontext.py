"""Time context of a message in the business's time zone: part of day, open now, closes at,
opens next (pure: the instant is the event's time).

Opening hours are `{"mon": [["09:00", "13:00"], ["14:00", "19:00"]], …, "sun": []}`; a missing
or empty day is closed; an interval whose end is not after its start runs past midnight into the
next day (`["18:00", "02:00"]`). Hours are wall-clock times, so DST days need no special case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ro": ("luni", "marți", "miercuri", "joi", "vineri", "sâmbătă", "duminică"),
}
PARTS = {
    "en": {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night"},
    "ro": {"morning": "dimineață", "afternoon": "după-amiază", "evening": "seară", "night": "noapte"},
}
LOOKAHEAD_DAYS = 7

Interval = tuple[datetime, datetime]  # naive local wall-clock times, start < end


@dataclass(frozen=True)
class TimeContext:
    local_time: str                       # "HH:MM" local
    weekday: str                          # "monday" … "sunday"
    date: str                             # local date, ISO
    part_of_day: str                      # morning | afternoon | evening | night
    is_open: bool
    closes_at: str | None                 # when open: "HH:MM" (None when open around the clock)
    opens_next: dict[str, Any] | None     # when closed: {"day": weekday, "time": "HH:MM", "in_days": int}
    timezone: str = "UTC"
    closed_today: str | None = None       # today is a closed day (holiday): its name ("" unnamed); None: it is not


def part_of_day(hour: int) -> str:
    """morning 05–12, afternoon 12–17, evening 17–22, night 22–05."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def _zone(name: str) -> tuple[ZoneInfo | timezone, str]:
    """The named zone; UTC for an empty or unknown name (a typo must not stop replies)."""
    try:
        return (ZoneInfo(name), name) if name else (timezone.utc, "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc, "UTC"


def _hm(text: str) -> time:
    hours, minutes = str(text).strip().split(":")
    return time(int(hours) % 24, int(minutes))


def _intervals(day: date, hours: dict[str, Any]) -> list[Interval]:
    """The opening intervals that start on a local day (malformed entries are skipped)."""
    result = []
    for entry in hours.get(DAYS[day.weekday()]) or []:
        try:
            start, end = _hm(entry[0]), _hm(entry[1])
        except (ValueError, IndexError, TypeError):
            continue
        end_day = day if end > start else day + timedelta(days=1)
        result.append((datetime.combine(day, start), datetime.combine(end_day, end)))
    return result


def _week(today: date, hours: dict[str, Any], closed: Mapping[str, str] | None = None) -> list[Interval]:
    """Intervals starting from yesterday to a week ahead, sorted (none on a closed day)."""
    days = [today + timedelta(days=offset) for offset in range(-1, LOOKAHEAD_DAYS + 2)]
    return sorted(iv for day in days if day.isoformat() not in (closed or {}) for iv in _intervals(day, hours))


def _closing(now: datetime, intervals: list[Interval]) -> tuple[bool, datetime | None]:
    """(open now, closing time) with back-to-back intervals merged; None if it never closes."""
    current = [iv for iv in intervals if iv[0] <= now < iv[1]]
    if not current:
        return False, None
    end = max(e for _, e in current)
    for start, stop in intervals:
        if start <= end < stop:
            end = stop
    return True, (None if end > now + timedelta(days=LOOKAHEAD_DAYS) else end)


def _opens_next(now: datetime, intervals: list[Interval]) -> dict[str, Any] | None:
    start = next((s for s, _ in intervals if now < s <= now + timedelta(days=LOOKAHEAD_DAYS)), None)
    if start is None:
        return None
    return {"day": WEEKDAYS[start.weekday()], "time": start.strftime("%H:%M"), "in_days": (start.date() - now.date()).days}


def time_context(at: datetime, tz: str, opening_hours: dict[str, Any],
                 closed_days: Mapping[str, str] | None = None) -> TimeContext:
    """Where the instant `at` falls in the business's week (a naive `at` is taken as UTC);
    `closed_days`: local ISO dates the business is closed (holidays) -> their names ("" unnamed)."""
    zone, zone_name = _zone(tz)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    now = at.astimezone(zone).replace(tzinfo=None)
    closed = closed_days or {}
    intervals = _week(now.date(), opening_hours or {}, closed)
    is_open, closes = _closing(now, intervals)
    return TimeContext(
        local_time=now.strftime("%H:%M"),
        weekday=WEEKDAYS[now.weekday()],
        date=now.date().isoformat(),
        part_of_day=part_of_day(now.hour),
        is_open=is_open,
        closes_at=closes.strftime("%H:%M") if closes else None,
        opens_next=None if is_open else _opens_next(now, intervals),
        timezone=zone_name,
        closed_today=closed.get(now.date().isoformat()),
    )


def day_name(weekday: str, lang: str) -> str:
    """'tuesday' → 'Tuesday' / 'marți'."""
    return DAY_NAMES[lang if lang in DAY_NAMES else "en"][WEEKDAYS.index(weekday)]


def when_opens(opens: dict[str, Any], lang: str) -> str:
    """'azi la 14:00', 'mâine la 09:00', 'luni la 09:00' / 'today at 14:00', 'on Monday at 09:00'."""
    days = int(opens["in_days"])
    if lang == "ro":
        day = "azi" if days == 0 else "mâine" if days == 1 else day_name(opens["day"], "ro")
        return f"{day} la {opens['time']}"
    day = "today" if days == 0 else "tomorrow" if days == 1 else "on " + day_name(opens["day"], "en")
    return f"{day} at {opens['time']}"


def open_status(tc: TimeContext, lang: str) -> str:
    """'Suntem deschiși până la 13:00.' / 'We are closed now; we open today at 14:00.'"""
    ro = lang == "ro"
    if tc.closed_today is not None:
        return closed_today_status(tc, lang)
    if tc.is_open:
        if tc.closes_at is None:
            return "Suntem deschiși non-stop." if ro else "We are open around the clock."
        return f"Suntem deschiși până la {tc.closes_at}." if ro else f"We are open until {tc.closes_at}."
    if tc.opens_next is None:
        return "Suntem închiși." if ro else "We are closed."
    when = when_opens(tc.opens_next, lang)
    return f"Suntem închiși acum; deschidem {when}." if ro else f"We are closed now; we open {when}."


def closed_today_status(tc: TimeContext, lang: str) -> str:
    """'We are closed today (a closed day: Crăciun); we open on Friday at 09:00.' / 'Astăzi suntem
    închiși (zi liberă: Crăciun); deschidem vineri la 09:00.'"""
    ro, name = lang == "ro", tc.closed_today or ""
    why = (f"zi liberă: {name}" if name else "zi liberă") if ro else (f"a closed day: {name}" if name else "a closed day")
    line = f"Astăzi suntem închiși ({why})" if ro else f"We are closed today ({why})"
    if tc.opens_next is None:
        return f"{line}."
    return f"{line}; deschidem {when_opens(tc.opens_next, lang)}." if ro else f"{line}; we open {when_opens(tc.opens_next, lang)}."


def describe(tc: TimeContext, lang: str = "en") -> str:
    """One line for the prompt (and the offline responder), in Romanian or English."""
    lang = "ro" if lang == "ro" else "en"
    day, part = day_name(tc.weekday, lang), PARTS[lang][tc.part_of_day]
    if lang == "ro":
        line = f"Acum este {tc.local_time} ({part}), {day}, {tc.date}, ora locală ({tc.timezone})."
    else:
        line = f"It is {tc.local_time} ({part}) on {day}, {tc.date}, local time ({tc.timezone})."
    return f"{line} {open_status(tc, lang)}"
