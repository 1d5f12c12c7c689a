"""What the model's prompt says about bookings (pure): the customer's appointments (their status
at the message's time) and the free times of the day the message asks about. Both are empty for
a conversation that never spoke of one, so such a prompt is as it was before bookings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from agentstream.projections.appointments import customer_appointments
from agentstream.projections.booking_rules import BookingRules, closed_days_of
from agentstream.projections.facts import business_zone

APPOINTMENTS = "appointments"  # ReplyContext.extra keys
FREE_SLOTS = "freeSlots"
CLOSED_DAYS = "closedDays"
CLOSED_AHEAD_DAYS = 31
MAX_LISTED = 5


def appointments_at(state: dict[str, Any] | None, at: datetime) -> list[dict[str, Any]]:
    """The customer's appointments as the prompt lists them: those not over before the message's day."""
    rows = customer_appointments(state, at, since=at.date())
    return [{k: a.get(k) for k in ("appointmentId", "at", "service", "status", "minutes")} for a in rows][:MAX_LISTED]


def closed_days_ahead(info: dict[str, Any], at: datetime, timezone_name: str) -> list[str]:
    """The business's closed days (holidays) from the message's local day to a month ahead, each
    with its name if it has one ("2030-12-25 (Crăciun)")."""
    today = at.astimezone(business_zone(timezone_name)).date()
    closed = closed_days_of(info)
    return [f"{d} ({closed[d]})" if closed[d] else d for d in sorted(closed)
            if today.isoformat() <= d and (date.fromisoformat(d) - today).days <= CLOSED_AHEAD_DAYS]


def free_slots_text(rules: BookingRules, day: date, held: dict[str, int], now: datetime,
                    holidays: Mapping[str, str] | None = None) -> str:
    """One line: the free starts of `day` (local), or why there are none (`holidays`: the closed
    days' names)."""
    name = f"{day.isoformat()} ({day.strftime('%A')})"
    if day.isoformat() in rules.closed_days:
        holiday = (holidays or {}).get(day.isoformat())
        return f"{name} is a closed day (holiday{': ' + holiday if holiday else ''}): nothing can be booked."
    starts = rules.free_starts(day, held, now)
    if not starts:
        return f"No free appointment times on {name}."
    return f"Free appointment times on {name}, local time: " + ", ".join(s.strftime("%H:%M") for s in starts) + "."


def bookings_blocks(extra: dict[str, Any]) -> list[str]:
    """The prompt's bookings blocks ([] when there is nothing to say)."""
    blocks = []
    rows = extra.get(APPOINTMENTS) or []
    if rows:
        lines = [f"- {a.get('service') or 'appointment'} at {a['at']}"
                 + (f" for {a['minutes']} minutes" if a.get("minutes") else "") + f": {a['status']}" for a in rows]
        blocks.append("The customer's appointments (only 'confirmed' ones are booked):\n" + "\n".join(lines))
    if extra.get(CLOSED_DAYS):
        blocks.append("Closed days (holidays, nothing is booked): " + ", ".join(extra[CLOSED_DAYS]) + ".")
    if extra.get(FREE_SLOTS):
        blocks.append(str(extra[FREE_SLOTS]))
    return blocks
