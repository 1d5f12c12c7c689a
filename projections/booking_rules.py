"""What a business books (pure): its slot length, how many appointments run at once, each
service's duration, its opening hours and closed days; which places an appointment takes.

From the business info (versioned in the config history like the opening hours):

    "slotMinutes": 30,                 # the grid appointments start on (default 30)
    "bookingCapacity": 2,              # appointments at once, e.g. two chairs (default 1)
    "closedDays": ["2030-12-26", {"date": "2030-12-25", "name": "Crăciun"}],  # holidays: nothing is booked on them
    "services": ["tuns bărbați 60 lei", {"name": "tuns damă", "price": "90 lei", "minutes": 45}]

A service given as a string, or without `minutes`, takes one slot. An appointment holds every
slot its duration touches; each slot is a side item of the event log, `slot:<local start>`,
counting the confirmed appointments in it (`held`), never more than the capacity.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from agentstream.projections.facts import business_zone

DEFAULT_SLOT = 30
SLOT_PREFIX = "slot:"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WORD = re.compile(r"[a-z]+")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Service:
    name: str
    minutes: int | None = None


@dataclass(frozen=True)
class BookingRules:
    timezone: str = "UTC"
    slot_minutes: int = DEFAULT_SLOT
    capacity: int = 1
    closed_days: frozenset[str] = frozenset()
    services: tuple[Service, ...] = ()
    opening_hours: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def zone(self) -> tzinfo:
        return business_zone(self.timezone)

    def service(self, asked: str | None) -> Service | None:
        """The listed service `asked` names (its words start the listed name's words), None if none does."""
        if not asked:
            return None
        words = _WORD.findall(_plain(asked))
        for service in self.services:
            listed = _WORD.findall(_plain(service.name))
            if words and all(any(w.startswith(a[:4]) or a.startswith(w[:4]) for w in listed) for a in words):
                return service
        return None

    def minutes_for(self, asked: str | None) -> int:
        """How long an appointment for `asked` lasts, whole slots: one slot if it has no duration."""
        found = self.service(asked)
        minutes = found.minutes if found and found.minutes else self.slot_minutes
        return math.ceil(minutes / self.slot_minutes) * self.slot_minutes

    def slots(self, start: datetime, minutes: int) -> list[str]:
        """The side-item names of the slots an appointment from `start` (local) for `minutes` touches."""
        local = start.astimezone(self.zone)
        first = local.replace(minute=(local.minute // self.slot_minutes) * self.slot_minutes, second=0, microsecond=0) \
            if self.slot_minutes <= 60 and 60 % self.slot_minutes == 0 else local.replace(second=0, microsecond=0)
        end = local + timedelta(minutes=minutes)
        names, at = [], first
        while at < end:
            names.append(slot_name(at))
            at += timedelta(minutes=self.slot_minutes)
        return names

    def refusal(self, start: datetime, minutes: int, now: datetime) -> str | None:
        """Why an appointment cannot be booked from `start` for `minutes`, None if it can."""
        local = start.astimezone(self.zone)
        if start <= now:
            return "that time has passed"
        if local.date().isoformat() in self.closed_days:
            return f"{local.date().isoformat()} is a closed day"
        if self.opening_hours and not self._open_through(local, minutes):
            return f"{local.strftime('%Y-%m-%d %H:%M')} for {minutes} minutes is outside the opening hours"
        return None

    def _open_through(self, local: datetime, minutes: int) -> bool:
        end = (local + timedelta(minutes=minutes)).time()
        for begin, finish in self.opening_hours.get(_DAYS[local.weekday()]) or []:
            if _hm(begin) <= local.time() and (end <= _hm(finish) or _hm(finish) == time(0)) and end > local.time():
                return True
        return False

    def day_starts(self, day: date) -> list[datetime]:
        """The local slot starts of `day` inside its opening hours (every slot of the day without hours)."""
        if day.isoformat() in self.closed_days:
            return []
        intervals = self.opening_hours.get(_DAYS[day.weekday()]) if self.opening_hours else [["00:00", "23:59"]]
        starts = []
        for begin, finish in intervals or []:
            at = datetime.combine(day, _hm(begin), self.zone)
            close = datetime.combine(day, _hm(finish), self.zone) if _hm(finish) != time(0) else \
                datetime.combine(day + timedelta(days=1), time(0), self.zone)
            while at + timedelta(minutes=self.slot_minutes) <= close:
                starts.append(at)
                at += timedelta(minutes=self.slot_minutes)
        return starts

    def free_starts(self, day: date, held: dict[str, int], now: datetime, minutes: int | None = None) -> list[datetime]:
        """The starts of `day` where an appointment of `minutes` (one slot) fits: open, future, with a place in every slot."""
        length = minutes or self.slot_minutes
        return [s for s in self.day_starts(day) if s > now and self.refusal(s, length, now) is None
                and all(held.get(n, 0) < self.capacity for n in self.slots(s, length))]


def _hm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours) % 24, int(minutes))


def slot_name(local: datetime) -> str:
    return f"{SLOT_PREFIX}{local.strftime('%Y-%m-%dT%H:%M')}"


def _services(raw: Any) -> tuple[Service, ...]:
    found = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str) and item.strip():
            found.append(Service(re.sub(r"\s*(?:de la\s+)?\d+(?:[.,]\d+)?\s*(?:lei|ron|eur|€|\$)?\s*$", "", item.strip()) or item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            minutes = item.get("minutes")
            found.append(Service(item["name"], int(minutes) if isinstance(minutes, (int, float)) and minutes > 0 else None))
    return tuple(found)


def closed_days_of(info: dict[str, Any] | None) -> dict[str, str]:
    """The business's closed days (holidays): local ISO date -> its name ("" unnamed). Each entry
    is a date ("2030-12-25") or {"date": "2030-12-25", "name": "Crăciun"}; others are skipped."""
    closed = (info or {}).get("closedDays")
    found: dict[str, str] = {}
    for entry in closed if isinstance(closed, list) else []:
        day, name = (entry, "") if isinstance(entry, str) else \
            (entry.get("date"), entry.get("name")) if isinstance(entry, dict) else (None, None)
        if isinstance(day, str) and _ISO_DAY.fullmatch(day.strip()):
            found[day.strip()] = name.strip() if isinstance(name, str) else ""
    return found


def rules_of(info: dict[str, Any] | None) -> BookingRules:
    """The booking rules of a business-info item (defaults for what it does not say)."""
    info = info or {}
    slot = info.get("slotMinutes")
    capacity = info.get("bookingCapacity")
    return BookingRules(
        timezone=str(info.get("timezone") or "UTC"),
        slot_minutes=int(slot) if isinstance(slot, (int, float)) and 5 <= slot <= 240 else DEFAULT_SLOT,
        capacity=int(capacity) if isinstance(capacity, (int, float)) and capacity >= 1 else 1,
        closed_days=frozenset(closed_days_of(info)),
        services=_services(info.get("services")),
        opening_hours=info.get("openingHours") if isinstance(info.get("openingHours"), dict) else {},
    )


def held_by(appointments: list[dict[str, Any]], rules: BookingRules) -> dict[str, int]:
    """Slot name -> how many of these appointments hold it (the confirmed ones, and the no-shows
    whose place was kept): the side items a replay sets."""
    held: dict[str, int] = {}
    for a in appointments:
        if a["status"] in ("confirmed", "no-show", "done") and a.get("at") and len(a["at"]) > 10:
            for name in rules.slots(datetime.fromisoformat(a["at"]), int(a.get("minutes") or rules.slot_minutes)):
                held[name] = held.get(name, 0) + 1
    return held
