"""Time context of a message in the business's time zone: part of day, open now, closes at,
opens next. Opening hours are `{"mon": [["09:00", "13:00"], ["14:00", "19:00"]], …}`; an
interval whose end is not after its start runs past midnight (`["18:00", "02:00"]`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ro": ("luni", "marți", "miercuri", "joi", "vineri", "sâmbătă", "duminică"),
}
PARTS = {"en": {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night"},
         "ro": {"morning": "dimineață", "afternoon": "după-amiază", "evening": "seară", "night": "noapte"}}


@dataclass(frozen=True)
class TimeContext:
    local_time: str
    weekday: str
    date: str
    part_of_day: str
    is_open: bool
    closes_at: str | None
    opens_next: dict[str, object] | None
    timezone: str


def part_of_day(hour: int) -> str:
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def _hm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours) % 24, int(minutes))


def _intervals(day: date, hours: dict[str, list[list[str]]], tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The opening intervals that start on a local day, as aware datetimes."""
    result = []
    for start_text, end_text in hours.get(DAYS[day.weekday()], []) or []:
        start = datetime.combine(day, _hm(start_text), tz)
        end_day = day if _hm(end_text) > _hm(start_text) else day + timedelta(days=1)
        result.append((start, datetime.combine(end_day, _hm(end_text), tz)))
    return result


def time_context(at: datetime, tz_name: str, opening_hours: dict[str, list[list[str]]]) -> TimeContext:
    """Where `at` (an aware instant) falls in the business's week."""
    tz = ZoneInfo(tz_name or "UTC")
    local = at.astimezone(tz)
    today = local.date()
    candidates = [iv for offset in (-1, 0) for iv in _intervals(today + timedelta(days=offset), opening_hours, tz)]
    current = next((iv for iv in candidates if iv[0] <= local < iv[1]), None)
    opens_next = None
    if current is None:
        upcoming = sorted(iv for offset in range(0, 8) for iv in _intervals(today + timedelta(days=offset), opening_hours, tz)
                          if iv[0] > local)
        if upcoming:
            start = upcoming[0][0]
            opens_next = {"day": DAYS[start.weekday()], "time": start.strftime("%H:%M"), "in_days": (start.date() - today).days}
    return TimeContext(
        local_time=local.strftime("%H:%M"),
        weekday=DAYS[local.weekday()],
        date=today.isoformat(),
        part_of_day=part_of_day(local.hour),
        is_open=current is not None,
        closes_at=current[1].astimezone(tz).strftime("%H:%M") if current else None,
        opens_next=opens_next,
        timezone=tz_name or "UTC",
    )


def _when(opens: dict[str, object], lang: str) -> str:
    days = int(opens["in_days"])  # type: ignore[arg-type]
    if lang == "ro":
        day = "azi" if days == 0 else "mâine" if days == 1 else DAY_NAMES["ro"][DAYS.index(str(opens["day"]))]
        return f"{day} la {opens['time']}"
    day = "today" if days == 0 else "tomorrow" if days == 1 else "on " + DAY_NAMES["en"][DAYS.index(str(opens["day"]))]
    return f"{day} at {opens['time']}"


def describe(tc: TimeContext, lang: str = "en") -> str:
    """One line for the prompt (and the offline responder)."""
    lang = lang if lang in DAY_NAMES else "en"
    day = DAY_NAMES[lang][DAYS.index(tc.weekday)]
    part = PARTS[lang][tc.part_of_day]
    if lang == "ro":
        line = f"Acum este {tc.local_time} ({part}), {day}, {tc.date}, ora locală {tc.timezone}. "
        if tc.is_open:
            return line + f"Suntem deschiși până la {tc.closes_at}."
        return line + (f"Suntem închiși acum; deschidem {_when(tc.opens_next, 'ro')}." if tc.opens_next else "Suntem închiși.")
    line = f"It is {tc.local_time} ({part}) on {day}, {tc.date}, local time {tc.timezone}. "
    if tc.is_open:
        return line + f"We are open until {tc.closes_at}."
    return line + (f"We are closed now; we open {_when(tc.opens_next, 'en')}." if tc.opens_next else "We are closed.")
