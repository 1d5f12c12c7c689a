"""A customer's appointments, folded from their appointment events (pure).

An appointment is requested (by the customer's message), proposed (another time is offered),
confirmed (it holds its places), declined, cancelled (by either side) or marked no-show. A
confirmed appointment whose end has passed reads as `done`: a rule applied when it is read
(`status_at`), never a timer or an event. A transition the state does not allow (a confirmation
of a cancelled appointment, a second request with the same id) changes nothing, so the fold is
total over any log.

The state item (table `appointments`, one per customer) holds every appointment of the customer
(the oldest ended ones are dropped beyond `MAX_ENDED`); each change also puts the appointment's
row into `bookings` (one row per appointment, keyed by business and appointment id, indexed by
business and start), the business's read model of its days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from agentstream.events import (
    AppointmentCancelled, AppointmentConfirmed, AppointmentDeclined, AppointmentNoShow, AppointmentProposed,
    AppointmentRequested, Event, iso,
)
from agentstream.projections.base import FoldConfig, Put

State = dict[str, Any]
VERSION = 1
MAX_ENDED = 50  # ended appointments kept per customer (the newest)
OPEN = ("requested", "proposed")  # waiting for the owner or the customer
HOLDING = ("confirmed",)  # holding places
ENDED = ("declined", "cancelled", "no-show")
STATUSES = ("requested", "proposed", "confirmed", "declined", "cancelled", "no-show", "done")
APPOINTMENT_TYPES = ("AppointmentRequested", "AppointmentProposed", "AppointmentConfirmed", "AppointmentDeclined",
                     "AppointmentCancelled", "AppointmentNoShow")

# event type -> the statuses it applies to, and the status it leaves
_MOVES: dict[type, tuple[tuple[str, ...], str]] = {
    AppointmentProposed: (OPEN, "proposed"),
    AppointmentConfirmed: (OPEN, "confirmed"),
    AppointmentDeclined: (OPEN, "declined"),
    AppointmentCancelled: (OPEN + HOLDING, "cancelled"),
    AppointmentNoShow: (HOLDING, "no-show"),
}


def empty_appointments(business_id: str, user_id: str) -> State:
    return {"businessId": business_id, "userId": user_id, "lastSeq": 0, "version": VERSION, "appointments": {}}


def starts_at(at: str) -> str | None:
    """The UTC start of a local ISO time with its offset; None for a day-only request."""
    if len(at) == 10:
        return None
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso(moment)


def day_of(at: str) -> str:
    """The local day (YYYY-MM-DD) of a local ISO time or date."""
    return at[:10]


def ends_at(appointment: dict[str, Any]) -> datetime | None:
    """When a timed appointment ends (its start plus its minutes, one hour if it has none)."""
    start = appointment.get("startsAt")
    if not start:
        return None
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return begin + timedelta(minutes=int(appointment.get("minutes") or 60))


def status_at(appointment: dict[str, Any], now: datetime) -> str:
    """The appointment's status read at `now`: a confirmed one whose end has passed is done."""
    status = appointment["status"]
    end = ends_at(appointment)
    if status == "confirmed" and end is not None and end <= now:
        return "done"
    return status


def apply_appointments(state: State, event: Event) -> tuple[State, list[Put]]:
    """Fold one event: the new state and the rows it changed (none for other event types)."""
    if event.seq <= int(state.get("lastSeq", 0)):
        return state, []
    state = {**state, "lastSeq": event.seq}
    if event.type not in APPOINTMENT_TYPES:
        return state, []
    appointments = dict(state.get("appointments") or {})
    changed = _changed(appointments, event)
    if changed is None:
        return state, []
    appointments[changed["appointmentId"]] = changed
    state["appointments"] = _bounded(appointments)
    return state, [Put("bookings", booking_row(state, changed))]


def _changed(appointments: dict[str, Any], event: Event) -> dict[str, Any] | None:
    """The appointment as `event` leaves it, None if the event changes nothing."""
    payload: Any = event.payload
    current = appointments.get(payload.appointmentId)
    if isinstance(event, AppointmentRequested):
        return None if current is not None else _requested(event)
    if current is None or current["status"] not in _MOVES[type(event)][0]:
        return None
    moved = {**current, "status": _MOVES[type(event)][1], "by": payload.by, "updatedAt": iso(event.occurredAt),
             "lastSeq": event.seq}
    if isinstance(event, (AppointmentProposed, AppointmentConfirmed)):
        moved |= {"at": payload.at, "startsAt": starts_at(payload.at), "day": day_of(payload.at),
                  "service": payload.service or current.get("service")}
    if isinstance(event, AppointmentConfirmed):
        moved["minutes"] = payload.minutes
    if isinstance(event, (AppointmentDeclined, AppointmentCancelled)) and payload.reason:
        moved["reason"] = payload.reason
    return moved


def _requested(event: AppointmentRequested) -> dict[str, Any]:
    p = event.payload
    return {"appointmentId": p.appointmentId, "status": "requested", "at": p.at, "startsAt": starts_at(p.at),
            "day": day_of(p.at), "service": p.service, "minutes": None, "by": p.by, "requestedAt": iso(event.occurredAt),
            "updatedAt": iso(event.occurredAt), "sourceEventId": p.sourceEventId, "lastSeq": event.seq,
            "channel": event.channel, "deliverTo": dict(p.deliverTo)}


def _bounded(appointments: dict[str, Any]) -> dict[str, Any]:
    """At most MAX_ENDED ended appointments (the most recently changed kept)."""
    ended = sorted((a for a in appointments.values() if a["status"] in ENDED), key=lambda a: a["lastSeq"])
    drop = {a["appointmentId"] for a in ended[:-MAX_ENDED]} if len(ended) > MAX_ENDED else set()
    return {k: v for k, v in appointments.items() if k not in drop}


def booking_row(state: State, appointment: dict[str, Any]) -> dict[str, Any]:
    """The appointment's row in the business's bookings (its start, or its day for a day-only request)."""
    return {"businessId": state["businessId"], "userId": state["userId"], **appointment,
            "startsAt": appointment.get("startsAt") or f"{appointment['day']}T00:00:00.000Z"}


def customer_appointments(state: State | None, now: datetime, since: date | None = None) -> list[dict[str, Any]]:
    """The customer's appointments with their status read at `now`, soonest first (those ended
    before `since` left out)."""
    rows = [{**a, "status": status_at(a, now)} for a in ((state or {}).get("appointments") or {}).values()]
    if since is not None:
        rows = [a for a in rows if a["day"] >= since.isoformat() or a["status"] in OPEN]
    return sorted(rows, key=lambda a: (a.get("startsAt") or a["day"], a["appointmentId"]))


class AppointmentsProjection:
    """The customer's appointments (state item in `appointments`) and their rows in `bookings`."""

    name = "appointments"
    table = "appointments"
    owns = {"appointments": ("businessId", "userId"), "bookings": ("businessId", "appointmentId")}
    version = VERSION

    def empty(self, business_id: str, user_id: str) -> State:
        return empty_appointments(business_id, user_id)

    def apply(self, state: State, event: Event, config: FoldConfig) -> tuple[State, list[Put]]:
        return apply_appointments(state, event)


APPOINTMENTS = AppointmentsProjection()
