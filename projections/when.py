"""When an appointment request means: day and time words of one message (Romanian and English,
folded to ASCII lower case) resolved against the event's local time (pure, no wall clock).

Rules, in the business's time zone:
- The last day mention and the last time mention win ("de joi pe vineri la 11" → Friday 11:00);
  what follows "în loc de" / "instead of" (up to the next punctuation) is ignored.
- Days: azi/astăzi/today/diseară/tonight, mâine/tomorrow, poimâine/day after tomorrow; a weekday
  is its next occurrence after today (the same weekday means next week); "12 decembrie",
  "December 12", "12th of December", "12.12[.2026]", "pe 12" / "on the 12th": the next such date
  from today on.
- Times: "la 10", "la ora 10:30", "at 9.30", "17:00", "5pm", "14h30", "la 10 și jumătate" (10:30),
  "și un sfert" (:15), "fără un sfert" (-:15), "half past 9", "quarter past/to 9". An hour from 1
  to 7 with no am/pm and no morning word is taken as the afternoon (17:00 for "la 5"); an hour
  before 12 with an afternoon or evening word gets 12 added.
- Parts of day alone: dimineață/morning 10:00, la prânz/noon 12:00, după-amiază/afternoon 15:00,
  seară/diseară/evening/tonight 18:00 ("Bună seara" and other greetings are not parts of day).
- A time with no day is today if still ahead, else tomorrow; a day with no time is a day-only
  request; a resolved time not after the event is no request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

RELATIVE_DAYS = {"azi": 0, "astazi": 0, "today": 0, "diseara": 0, "tonight": 0, "maine": 1, "tomorrow": 1,
                 "poimaine": 2, "day after tomorrow": 2}
WEEKDAY_WORDS = {
    "luni": 0, "lunea": 0, "marti": 1, "martea": 1, "miercuri": 2, "miercurea": 2, "joi": 3, "joia": 3,
    "vineri": 4, "vinerea": 4, "sambata": 5, "duminica": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
}
EN_MONTHS = {"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4, "may": 5,
             "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9,
             "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12}
RO_MONTHS = {"ianuarie": 1, "ian": 1, "februarie": 2, "martie": 3, "aprilie": 4, "mai": 5, "iunie": 6,
             "iun": 6, "iulie": 7, "iul": 7, "septembrie": 9, "octombrie": 10, "noiembrie": 11,
             "decembrie": 12}
MONTHS = {**EN_MONTHS, **RO_MONTHS}
PART_TIMES = {"dimineata": time(10), "morning": time(10), "pranz": time(12), "noon": time(12),
              "midday": time(12), "lunchtime": time(12), "dupa-amiaza": time(15), "dupa amiaza": time(15),
              "dupa-masa": time(15), "dupa masa": time(15), "dupamasa": time(15), "afternoon": time(15),
              "seara": time(18), "diseara": time(18), "evening": time(18), "tonight": time(18)}
MORNING, LATER = frozenset({"dimineata", "morning"}), frozenset(PART_TIMES) - {"dimineata", "morning", "pranz",
                                                                              "noon", "midday", "lunchtime"}
GREETINGS = re.compile(r"\b(?:buna|good)\s+(?:seara|dimineata|ziua|evening|morning|afternoon|day)\b")
INSTEAD = re.compile(r"\b(?:in loc de|instead of)\b[^,.;!?]*?"
                     r"(?=[,.;!?]|\b(?:as vrea|vreau|prefer|i want|i'd like|please|va rog)\b|$)")


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of words, longest first."""
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_MONTH = _alternation(MONTHS)
_DAY_WORDS = re.compile(rf"\b(?:{_alternation(RELATIVE_DAYS)}|{_alternation(WEEKDAY_WORDS)})\b")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+|de\s+)?({_MONTH})\b\.?(?:\s+(\d{{4}}))?")
_MONTH_DAY = re.compile(rf"\b({_alternation(EN_MONTHS)})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?")
_NUMERIC = re.compile(r"(?<![\d.:/])(\d{1,2})[./](\d{1,2})(?:[./](\d{4}|\d{2}))?"
                      r"(?![\d:/]|\.\d|\s*(?:lei|ron|euro|eur|%))")
_DAY_ONLY = re.compile(rf"\b(?:on the|pe)\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![.:/]\d|\s*(?:de\s+)?(?:{_MONTH})\b"
                       r"|\s*(?:pm|am|persoan|oameni|people|pers\b|lei|ron|euro|ore|zile|min))")
_TIME_PREFIX = re.compile(r"\b(?:la|ora|orele|at|around)\s*$")
_NOT_TIME = (r"(?!\s*(?:\d|min|minute|persoan|pers\b|oameni|people|person|guests|lei|ron|euro|eur|ani|years|zile|"
             r"days|ore\b|hours|%))")
_CLOCK = re.compile(
    r"\b(?:(?:pe |de )?la|in jur de|catre|ora|orele|at|around|from)\s+(?:ora\s+|orele\s+)?(\d{1,2})"
    r"(?:\s*[:.h]\s*(\d{2}))?(?:\s*(a\.?m\.?|p\.?m\.?)(?![a-z]))?" + _NOT_TIME)
_BARE_CLOCK = re.compile(r"\b(\d{1,2})(?:(?::|h)(\d{2})\b(?:\s*(a\.?m\.?|p\.?m\.?)(?![a-z]))?"
                         r"|\s*(a\.?m\.?|p\.?m\.?)(?![a-z]))")
_HALF_PAST = re.compile(r"\b(half|quarter)\s+(past|to)\s+(\d{1,2})\b")
_RO_FRACTION = re.compile(r"\s+(?:si\s+(jumatate|un sfert|sfert)|fara\s+(?:un\s+)?(sfert))\b")
_PARTS = re.compile(rf"\b(?:{_alternation(PART_TIMES)})\b")
_CUE = re.compile(r"[a-z]+")
_DIGIT = re.compile(r"\d")
DAY_CUES = frozenset(w for key in RELATIVE_DAYS for w in key.split()) | frozenset(WEEKDAY_WORDS)
PART_CUES = frozenset(w for key in PART_TIMES for w in re.split(r"[ -]", key))


@dataclass(frozen=True)
class Mention:
    """A day or time found in the text, with its position (the last one wins)."""

    at: int
    value: object


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_date(month: int, day: int, year: int | None, today: date) -> date | None:
    """The date from today on (next year if it passed), or the given year's."""
    if year is not None:
        found = _date(year if year > 99 else 2000 + year, month, day)
        return found if found and found >= today else None
    this_year = _date(today.year, month, day)
    return this_year if this_year and this_year >= today else _date(today.year + 1, month, day)


def _day_mentions(text: str, words: frozenset[str], digits: bool, today: date) -> list[Mention]:
    found: list[Mention] = []
    for m in _DAY_WORDS.finditer(text) if not DAY_CUES.isdisjoint(words) else ():
        word = m.group(0)
        if word in RELATIVE_DAYS:
            found.append(Mention(m.start(), today + timedelta(days=RELATIVE_DAYS[word])))
        else:
            ahead = (WEEKDAY_WORDS[word] - today.weekday() - 1) % 7 + 1
            found.append(Mention(m.start(), today + timedelta(days=ahead)))
    if not digits:
        return found
    if not words.isdisjoint(MONTHS):
        for m in _DAY_MONTH.finditer(text):
            found.append(Mention(m.start(), _next_date(MONTHS[m.group(2)], int(m.group(1)), _int(m.group(3)), today)))
        for m in _MONTH_DAY.finditer(text):
            found.append(Mention(m.start(), _next_date(MONTHS[m.group(1)], int(m.group(2)), _int(m.group(3)), today)))
    for m in _NUMERIC.finditer(text):
        if not _TIME_PREFIX.search(text, max(0, m.start() - 8), m.start()) and int(m.group(2)) <= 12:
            found.append(Mention(m.start(), _next_date(int(m.group(2)), int(m.group(1)), _int(m.group(3)), today)))
    for m in _DAY_ONLY.finditer(text):
        month = today.month if int(m.group(1)) >= today.day else today.month % 12 + 1
        found.append(Mention(m.start(), _next_date(month, int(m.group(1)), None, today)))
    return [m for m in found if m.value is not None]


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _clock(hour: int, minute: int, meridian: str | None, parts: set[str]) -> time | None:
    """A wall-clock time, with the afternoon assumed for 1–7 (see the module's rules)."""
    if meridian:
        if hour > 12:
            return None
        hour = hour % 12 + (12 if meridian.startswith("p") else 0)
    elif hour < 12 and parts & LATER:
        hour += 12
    elif 1 <= hour <= 7 and not parts & MORNING:
        hour += 12
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _time_mentions(text: str, words: frozenset[str], digits: bool, parts: set[str]) -> list[Mention]:
    found: list[Mention] = []
    if not digits:
        return found
    for m in [*_CLOCK.finditer(text), *_BARE_CLOCK.finditer(text)]:
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        meridian = m.group(3) or (m.group(4) if m.re is _BARE_CLOCK else None)
        fraction = _RO_FRACTION.match(text, m.end())
        if fraction and not m.group(2):
            minute = 30 if fraction.group(1) == "jumatate" else 15
            hour, minute = (hour - 1, 45) if fraction.group(2) else (hour, minute)
        found.append(Mention(m.start(), _clock(hour, minute, meridian, parts)))
    for m in _HALF_PAST.finditer(text) if "half" in words or "quarter" in words else ():
        hour, minute = int(m.group(3)), 30 if m.group(1) == "half" else 15
        hour, minute = (hour - 1, 45) if m.group(2) == "to" else (hour, minute)
        found.append(Mention(m.start(), _clock(hour, minute, None, parts)))
    return [m for m in found if m.value is not None]


def resolve(text: str, now: datetime) -> datetime | date | None:
    """The local time (or the day only) a folded message asks for, after the naive local `now`."""
    words = frozenset(_CUE.findall(text))
    if "buna" in words or "good" in words:
        text = GREETINGS.sub(lambda m: " " * len(m.group(0)), text)
    if "loc" in words or "instead" in words:
        text = INSTEAD.sub(lambda m: " " * len(m.group(0)), text)
    digits = bool(_DIGIT.search(text))
    parts = {m.group(0) for m in _PARTS.finditer(text)} if not PART_CUES.isdisjoint(words) else set()
    days = _day_mentions(text, words, digits, now.date())
    times = _time_mentions(text, words, digits, parts)
    day = max(days, key=lambda m: m.at).value if days else None
    clock = max(times, key=lambda m: m.at).value if times else None
    if clock is None and parts:
        clock = PART_TIMES[max(parts, key=text.rfind)]
    if "diseara" in parts or "tonight" in parts:
        day = day or now.date()
    if day is None and clock is None:
        return None
    if clock is None:
        return day  # type: ignore[return-value]
    if day is None:
        day = now.date() if clock > now.time() else now.date() + timedelta(days=1)
    at = datetime.combine(day, clock)  # type: ignore[arg-type]
    return at if at > now else None
