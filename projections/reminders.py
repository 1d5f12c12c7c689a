"""Reminders before a confirmed appointment (pure).

A business sets `settings.remindBeforeMinutes` (e.g. [1440, 120]): each confirmed appointment
gets at most one reminder per value, due that long before it starts. One that would fall while
the business is closed (at night, on a weekday without hours or one of its `closedDays`) goes out at the end of the business's last
open stretch before it, an hour before closing (the evening before); one whose time has already
passed when the appointment is confirmed is not sent. A moved, cancelled, declined or no-show
appointment drops its pending reminders; a customer who opted out gets none.

The fold keeps one state item per customer (table `reminders`) with each appointment's planned
reminders; the item carries `dueShard` and `nextDueAt` (the earliest planned one) only while one
is pending, so the sparse index `dueShard-nextDueAt-index` holds the customers with a pending
reminder and a timer round reads only the due ones. The timer appends `ReminderSent` (its id and
key derive from the appointment, the minutes and the start); the fold decides whether it stands
(the appointment is still confirmed at that time, not already reminded, the customer not opted
out), and the worker publishes only one that stood.

A reminder is never sent at or after its appointment's start: a planned one whose start has
passed at an event's time is dropped from the plan and recorded under `missed` (so the due index
moves on); when no other event comes, the timer appends `ReminderMissed` for it (same key as its
ReminderSent would have had: one outcome per reminder) and nothing goes to the customer.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream import channel_specs
from agentstream.events import Event, iso
from agentstream.projections import templates
from agentstream.projections.base import FoldConfig, Put
from agentstream.projections.nudge import _merged
from agentstream.projections.timecontext import _week, _zone
from agentstream.projections.topics import detect_language

State = dict[str, Any]
VERSION = 2  # v2: reminders whose appointment started are dropped as missed; closed days
DUE_SHARDS = 4
BEFORE_CLOSING = timedelta(hours=1)  # a moved reminder goes out this long before the business closes
APPOINTMENT_TYPES = ("AppointmentConfirmed", "AppointmentProposed", "AppointmentCancelled", "AppointmentDeclined",
                     "AppointmentNoShow")
TEXTS = {
    "ro": "Vă reamintim programarea{service} {when}. Răspundeți „confirm” sau „nu mai pot”.",
    "en": "A reminder of your appointment{service} {when}. Reply \"confirm\" or \"cancel\".",
}


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def starts_iso(at: str) -> str:
    """An appointment's start as the reminders key it: ISO UTC (a naive time is UTC)."""
    moment = datetime.fromisoformat(at)
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


def may_stand(confirmed: dict[str, Any] | None, opted_out: bool, event: Event, config: FoldConfig) -> bool:
    """Whether a ReminderSent stands, as far as a fold that does not keep the plans (the
    conversation's) can tell: its appointment is confirmed (`confirmed`: its `startsAt` and
    `confirmedAt`, None if it is not) at the start it names, the customer has not opted out, it
    was due by then but not before the confirmation, and the appointment has not started."""
    payload: Any = event.payload
    if confirmed is None or confirmed["startsAt"] != payload.startsAt or opted_out:
        return False
    starts = _parse(payload.startsAt)
    due = due_time(starts, payload.minutesBefore, config)
    return _parse(confirmed["confirmedAt"]) <= due <= event.occurredAt < starts


def remind_before(info: dict[str, Any] | None) -> tuple[int, ...]:
    """settings.remindBeforeMinutes as positive whole minutes, largest first (invalid: none)."""
    values = ((info or {}).get("settings") or {}).get("remindBeforeMinutes") or []
    if not isinstance(values, list):
        return ()
    return tuple(sorted({int(v) for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0},
                        reverse=True))


def settings_error(info: dict[str, Any]) -> str | None:
    """Why settings.remindBeforeMinutes is refused (None: fine or absent)."""
    values = (info.get("settings") or {}).get("remindBeforeMinutes")
    if values is None:
        return None
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 43_200
                                               for v in values):
        return (f"{info.get('businessId')}: settings.remindBeforeMinutes must be a list of whole minutes "
                f"from 1 to 43200, got {values!r}")
    return None


def last_open_before(due: datetime, tz: str, hours: dict[str, Any],
                     closed: Mapping[str, str] | None = None) -> datetime | None:
    """`due` if the business is open then; else an hour before the end of its last open stretch
    before `due` (not before that stretch's start); None without opening hours, or with no open
    stretch in the week before (then as is). `closed`: its closed days (local ISO dates)."""
    if not hours:
        return None
    zone, _ = _zone(tz)
    local = due.astimezone(zone).replace(tzinfo=None)
    stretches = [s for day in (local.date() - timedelta(days=7),) for s in _merged(_week(day, hours, closed))]
    stretches += _merged(_week(local.date(), hours, closed))
    best: tuple[datetime, datetime] | None = None
    for start, end in _merged(stretches):
        if start <= local < end:
            return due
        if end <= local:
            best = (start, end)
    if best is None:
        return None
    start, end = best
    moved = max(start, end - BEFORE_CLOSING)
    return moved.replace(tzinfo=zone).astimezone(timezone.utc)


def due_time(starts: datetime, minutes: int, config: FoldConfig) -> datetime:
    """When the reminder `minutes` before `starts` goes out (moved out of closed hours)."""
    due = starts - timedelta(minutes=minutes)
    moved = last_open_before(due, config.timezone, config.opening_hours, config.closed_days)
    return due if moved is None else moved


def text(appointment: dict[str, Any], config: FoldConfig, language: str) -> str:
    """The reminder's text in the customer's language (the business's wall clock)."""
    zone, _ = _zone(config.timezone)
    when = _parse(appointment["startsAt"]).astimezone(zone).strftime("%d.%m.%Y %H:%M")
    service = f" ({appointment['service']})" if appointment.get("service") else ""
    return (TEXTS.get(language) or TEXTS["en"]).format(service=service, when=when)


def local_when(appointment: dict[str, Any], config: FoldConfig) -> str:
    zone, _ = _zone(config.timezone)
    return _parse(appointment["startsAt"]).astimezone(zone).strftime("%d.%m.%Y %H:%M")


def reminder_key(appointment_id: str, minutes: int, starts_at: str) -> str:
    return f"{appointment_id}|{minutes}|{starts_at}"


def empty_reminders(business_id: str, user_id: str) -> State:
    return {"businessId": business_id, "userId": user_id, "lastSeq": 0, "version": VERSION, "appointments": {}}


# ---- the fold --------------------------------------------------------------------------------

def apply_reminders(state: State, event: Event, config: FoldConfig) -> tuple[State, list[Put]]:
    if event.seq <= int(state.get("lastSeq", 0)):
        return state, []
    state = {**state, "lastSeq": event.seq, "appointments": dict(state.get("appointments") or {})}
    state.pop("stood", None)
    _drop_started(state, event)
    kind = event.type
    if kind == "MessageReceived":
        _on_message(state, event)
        for appointment_id in list(state["appointments"]):  # the window moved: free text again for a while
            _replan(state, appointment_id, config, event.occurredAt)
    elif kind == "AppointmentConfirmed":
        _on_confirmed(state, event, config)
    elif kind in APPOINTMENT_TYPES:
        _drop(state, event.payload.appointmentId, kind)  # type: ignore[union-attr]
    elif kind in ("CustomerOptedOut", "CustomerOptedIn"):
        state["optedOut"] = kind == "CustomerOptedOut"
        for appointment_id in list(state["appointments"]):
            _replan(state, appointment_id, config, event.occurredAt)
    elif kind == "ReminderSent":
        _on_sent(state, event)
    elif kind in ("FactsExtracted", "FactCorrected"):
        _on_name(state, event)
    return _with_due(state), []  # the state item is the customer's row, due index attributes included


def _on_message(state: State, event: Event) -> None:
    payload: Any = event.payload
    state["lastInbound"] = {"at": iso(event.occurredAt), "channel": event.channel, "replyTo": dict(payload.replyTo)}
    if payload.content.strip():
        state["language"] = detect_language(payload.content, state.get("language") or "en")


def _on_name(state: State, event: Event) -> None:
    """The customer's name, for a template's `name` parameter."""
    payload: Any = event.payload
    facts = payload.facts if event.type == "FactsExtracted" else [payload]
    for fact in facts:
        if fact.kind == "name" and isinstance(fact.value, str):
            state["name"] = fact.value


def _on_confirmed(state: State, event: Event, config: FoldConfig) -> None:
    payload: Any = event.payload
    starts = starts_iso(payload.at)
    current = state["appointments"].get(payload.appointmentId) or {}
    same = current.get("startsAt") == starts
    sent, missed = (current.get("sent", {}), current.get("missed", {})) if same else ({}, {})
    last = state.get("lastInbound") or {}
    state["appointments"][payload.appointmentId] = {
        "appointmentId": payload.appointmentId, "status": "confirmed", "startsAt": starts, "service": payload.service,
        "channel": event.channel if event.channel != "system" else last.get("channel", "websocket"),
        "deliverTo": dict(payload.deliverTo or last.get("replyTo") or {}), "confirmedAt": iso(event.occurredAt),
        "sent": sent, **({"missed": missed} if missed else {}), "planned": [],
    }
    _replan(state, payload.appointmentId, config, event.occurredAt)


def _drop(state: State, appointment_id: str, kind: str) -> None:
    """A moved (proposed again), cancelled, declined or no-show appointment: no pending reminder."""
    current = state["appointments"].get(appointment_id)
    if current is not None:
        state["appointments"][appointment_id] = {**current, "status": kind.removeprefix("Appointment").lower(),
                                                 "planned": []}


def _drop_started(state: State, event: Event) -> None:
    """Planned reminders whose appointment has started by the event's time go to `missed` (keyed
    like `sent`, valued by the event that found them late): none is ever sent from then on."""
    for appointment_id, appointment in list(state["appointments"].items()):
        if appointment.get("planned") and _parse(appointment["startsAt"]) <= event.occurredAt:
            late = {reminder_key(appointment_id, p["minutes"], appointment["startsAt"]): event.eventId
                    for p in appointment["planned"]}
            state["appointments"][appointment_id] = {**appointment, "planned": [],
                                                     "missed": {**appointment.get("missed", {}), **late}}


def _replan(state: State, appointment_id: str, config: FoldConfig, now: datetime) -> None:
    """The appointment's pending reminders: one per `remindBeforeMinutes` not yet sent nor missed,
    due after `confirmedAt`, and sendable (inside the window, or with a reminder template); none
    once the appointment has started (`now`: the event's time)."""
    appointment = state["appointments"][appointment_id]
    starts, confirmed = _parse(appointment["startsAt"]), _parse(appointment["confirmedAt"])
    if appointment["status"] != "confirmed" or state.get("optedOut") or now >= starts:
        state["appointments"][appointment_id] = {**appointment, "planned": []}
        return
    language = state.get("language") or config.language
    content = text(appointment, config, language)
    template = templates.find(config.templates, "reminder", appointment["channel"], language, config.language)
    last_at = (state.get("lastInbound") or {}).get("at")
    ends = templates.window_ends(appointment["channel"], last_at)
    planned = []
    for minutes in config.remind_before_minutes:
        key = reminder_key(appointment_id, minutes, appointment["startsAt"])
        due = due_time(starts, minutes, config)
        if key in appointment.get("sent", {}) or key in appointment.get("missed", {}) or due < confirmed or due >= starts:
            continue
        closed = channel_specs.window_hours(appointment["channel"]) is not None and (ends is None or due > ends)
        if closed and template is None:
            continue  # past the window with no approved template: it could not be delivered
        values = {"name": state.get("name", ""), "when": local_when(appointment, config),
                  "service": appointment.get("service") or "", "text": content}
        planned.append({"minutes": minutes, "dueAt": iso(due), "content": content,
                        **({"template": templates.use(template, values)} if template else {}),
                        **({"windowUntil": iso(ends)} if ends is not None else {})})
    if channel_specs.window_hours(appointment["channel"]) is not None and ends is None:
        for plan in planned:
            plan["windowUntil"] = "1970-01-01T00:00:00.000Z"  # nobody wrote: the window is closed
    state["appointments"][appointment_id] = {**appointment, "planned": planned}


def _on_sent(state: State, event: Event) -> None:
    """A timer's reminder stands if its appointment is confirmed at the same start, it was due by
    the event's time, no reminder for the same minutes went out, and the appointment had not
    started (a late one found its plan already dropped as missed)."""
    payload: Any = event.payload
    appointment = state["appointments"].get(payload.appointmentId)
    key = reminder_key(payload.appointmentId, payload.minutesBefore, payload.startsAt)
    plan = next((p for p in (appointment or {}).get("planned", []) if p["minutes"] == payload.minutesBefore), None)
    stands = (appointment is not None and appointment["status"] == "confirmed" and not state.get("optedOut")
              and appointment["startsAt"] == payload.startsAt and key not in appointment.get("sent", {})
              and plan is not None and _parse(plan["dueAt"]) <= event.occurredAt)
    if not stands:
        return
    state["stood"] = event.eventId
    appointment = {**appointment, "sent": {**appointment.get("sent", {}), key: event.eventId},  # type: ignore[dict-item]
                   "planned": [p for p in appointment["planned"] if p["minutes"] != payload.minutesBefore]}  # type: ignore[index]
    state["appointments"][payload.appointmentId] = appointment


def _with_due(state: State) -> State:
    """The state with `dueShard` and `nextDueAt` while a reminder is pending, without them otherwise."""
    state = {k: v for k, v in state.items() if k not in ("dueShard", "nextDueAt")}
    pending = [p["dueAt"] for a in state["appointments"].values() for p in a.get("planned", [])]
    if pending:
        state["dueShard"] = due_shard(state["userId"])
        state["nextDueAt"] = min(pending)
    return state


def due_shard(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % DUE_SHARDS


def due_reminders(item: State, now: datetime) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(appointment, plan) of every reminder of a state item due at `now`, its appointment not
    yet started (a reminder never goes at or after the start)."""
    return [(a, p) for a in (item.get("appointments") or {}).values() for p in a.get("planned", [])
            if _parse(p["dueAt"]) <= now < _parse(a["startsAt"])]


def missed_reminders(item: State, now: datetime) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(appointment, plan) of every planned reminder whose appointment has started by `now`: the
    timer records them as missed (the fold then drops them), never sends them."""
    return [(a, p) for a in (item.get("appointments") or {}).values() for p in a.get("planned", [])
            if _parse(a["startsAt"]) <= now]


def reminder_stands(state: State | None, event_id: str) -> bool:
    """Whether the reminders fold let a ReminderSent stand (its state, just after, records it)."""
    return (state or {}).get("stood") == event_id


class RemindersProjection:
    """A customer's reminders: per appointment, the planned and the sent ones (table `reminders`)."""

    name = "reminders"
    table = "reminders"
    owns = {"reminders": ("businessId", "userId")}
    version = VERSION

    def empty(self, business_id: str, user_id: str) -> State:
        return empty_reminders(business_id, user_id)

    def apply(self, state: State, event: Event, config: FoldConfig) -> tuple[State, list[Put]]:
        return apply_reminders(state, event, config)


REMINDERS = RemindersProjection()
