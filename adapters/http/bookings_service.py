"""The owner's (and the customer's) appointment commands and the business's bookings list.

A command reads the appointment's current state by folding its customer's log (not the read
model, which is a moment behind), checks the move, and appends one event. A confirmation takes
its places in the same transaction (`append_with`): a claim that the appointment is confirmed
once, and one count per slot its duration touches, each refused past the business's capacity.
Two owners confirming the last place at once get one confirmation and one 409. A cancellation of
a confirmed appointment gives its places back the same way (once: a claim of the release).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol

from agentstream.adapters.dynamo.bookings import BookingsTable
from agentstream.adapters.http.errors import HttpError
from agentstream.adapters.side_items import AddTo, Claim, SideItem, SideRefused, TakeFrom
from agentstream.events import Event, OutboundSend, derive_id, iso, new_event, stream_id, utc_now
from agentstream.projections import templates
from agentstream.projections import booking_texts as texts
from agentstream.projections.appointments import HOLDING, OPEN, STATUSES, apply_appointments, empty_appointments, status_at
from agentstream.projections.booking_rules import BookingRules, rules_of
from agentstream.adapters.dynamo.event_store import AppendResult

MAX_RANGE_DAYS = 62
ACTIONS = ("confirm", "decline", "propose", "cancel", "no-show")


def version_claim(appointment: dict[str, Any]) -> Claim:
    """The claim every change of an appointment makes on the version it was decided on: of two
    changes decided on the same state (a confirmation and a cancellation at once), one goes in."""
    return Claim(f"appointment:{appointment['appointmentId']}@{appointment['lastSeq']}")


class EventLog(Protocol):
    async def read(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[Event]: ...

    async def append_with(self, event: Event, side: list[SideItem], external_id: str | None = None,
                          head: int | None = None) -> AppendResult: ...


class Directory(Protocol):
    async def info(self, business_id: str) -> dict[str, Any] | None: ...


class Bookings:
    """Appointment commands over the event log, the directory and the bookings read model."""

    def __init__(self, store: EventLog, directory: Directory, table: BookingsTable) -> None:
        self._store = store
        self._directory = directory
        self.table = table

    # -- queries -----------------------------------------------------------------------------

    async def list(self, business_id: str, start: str | None, end: str | None, status: str | None,
                   now: datetime | None = None) -> list[dict[str, Any]]:
        """The business's appointments starting in [start, end) (ISO dates or times; default:
        from today for 7 days), of one status if given, soonest first."""
        if status is not None and status not in STATUSES:
            raise HttpError(400, f"status must be one of {', '.join(STATUSES)}")
        rules = await self.rules(business_id)
        now = now or utc_now()
        begin, finish = _range(start, end, rules, now)
        rows = await self.table.between(business_id, begin, finish)
        out = [appointment_view(r, now) for r in rows if r["startsAt"] < finish]
        return [r for r in out if status is None or r["status"] == status]

    async def rules(self, business_id: str) -> BookingRules:
        return rules_of(await self._directory.info(business_id))

    async def appointment(self, business_id: str, appointment_id: str) -> tuple[dict[str, Any], int]:
        """The appointment as its customer's log has it now, and that log's head; 404 if unknown."""
        row = await self.table.row(business_id, appointment_id)
        if row is None:
            raise HttpError(404, "unknown appointment")
        state = await self.customer_state(business_id, row["userId"])
        found = (state.get("appointments") or {}).get(appointment_id)
        if found is None:
            raise HttpError(404, "unknown appointment")
        return ({**found, "businessId": business_id, "userId": row["userId"], "lastInboundAt": state["lastInboundAt"]},
                int(state["lastSeq"]))

    async def customer_state(self, business_id: str, user_id: str) -> dict[str, Any]:
        """The customer's appointments folded from their log as it is now."""
        state, last_inbound = empty_appointments(business_id, user_id), None
        for event in await self._store.read(stream_id(business_id, user_id)):
            state, _ = apply_appointments(state, event)
            last_inbound = iso(event.occurredAt) if event.type == "MessageReceived" else last_inbound
        return {**state, "lastInboundAt": last_inbound}

    # -- commands ----------------------------------------------------------------------------

    async def act(self, business_id: str, appointment_id: str, action: str, body: dict[str, Any] | None = None,
                  by: str = "owner", source_event_id: str | None = None, key: str | None = None) -> dict[str, Any]:
        """Apply `action` (one of ACTIONS) to the appointment (once per idempotency id `key`, if
        given): {"appointmentId", "status", "eventId", "seq", "duplicate"}."""
        appointment, head = await self.appointment(business_id, appointment_id)
        return await self.act_on(appointment, head, action, body or {}, by, source_event_id, key)

    async def act_on(self, appointment: dict[str, Any], head: int, action: str, body: dict[str, Any], by: str,
                     source_event_id: str | None = None, key: str | None = None) -> dict[str, Any]:
        """`act` on an appointment already read (with `businessId` and `userId`) at log head `head`."""
        business_id, appointment_id = appointment["businessId"], appointment["appointmentId"]
        language = await self._language(business_id)
        handlers = {"confirm": self._confirm, "decline": self._decline, "propose": self._propose,
                    "cancel": self._cancel, "no-show": self._no_show}
        if action not in handlers:
            raise HttpError(404, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        event, side, status = await handlers[action](appointment, body, by, language, source_event_id)
        event, unsent = await self._with_send(event, appointment, language)
        try:
            result = await self._store.append_with(event, [version_claim(appointment), *side], external_id=key, head=head)
        except SideRefused as exc:
            raise _refusal(exc, appointment) from None
        done = {"appointmentId": appointment_id, "status": status, "eventId": result.event.eventId,
                "seq": result.event.seq, "duplicate": result.duplicate}
        return {**done, "notSent": unsent} if unsent else done

    async def _confirm(self, a: dict[str, Any], body: dict[str, Any], by: str, language: str,
                       source: str | None) -> tuple[Event, list[SideItem], str]:
        _must_be(a, OPEN, "confirmed")
        if len(a["at"]) <= 10:
            raise HttpError(409, "the request names a day, not a time: propose a time first")
        rules = await self.rules(a["businessId"])
        start = datetime.fromisoformat(a["at"])
        minutes = rules.minutes_for(a.get("service"))
        refusal = rules.refusal(start, minutes, utc_now())
        if refusal:
            raise HttpError(409, f"cannot confirm: {refusal}")
        side: list[SideItem] = [AddTo(name, "held", 1, at_most=rules.capacity) for name in rules.slots(start, minutes)]
        event = _event("AppointmentConfirmed", a, by, source, at=a["at"], minutes=minutes, service=a.get("service"),
                       content=texts.confirmed_text(a, a["at"], language))
        return event, side, "confirmed"

    async def _propose(self, a: dict[str, Any], body: dict[str, Any], by: str, language: str,
                       source: str | None) -> tuple[Event, list[SideItem], str]:
        _must_be(a, OPEN, "proposed")
        rules = await self.rules(a["businessId"])
        at = _local_time(body.get("at"), rules)
        refusal = rules.refusal(datetime.fromisoformat(at), rules.minutes_for(a.get("service")), utc_now())
        if refusal:
            raise HttpError(409, f"cannot propose it: {refusal}")
        event = _event("AppointmentProposed", a, by, source, at=at, service=a.get("service"),
                       content=texts.proposed_text(a, at, language))
        return event, [], "proposed"

    async def _decline(self, a: dict[str, Any], body: dict[str, Any], by: str, language: str,
                       source: str | None) -> tuple[Event, list[SideItem], str]:
        _must_be(a, OPEN, "declined")
        event = _event("AppointmentDeclined", a, by, source, reason=_reason(body), content=texts.declined_text(a, language))
        return event, [], "declined"

    async def _cancel(self, a: dict[str, Any], body: dict[str, Any], by: str, language: str,
                      source: str | None) -> tuple[Event, list[SideItem], str]:
        if a["status"] in HOLDING and status_at(a, utc_now()) == "done":
            raise HttpError(409, "the appointment is done: it can no longer be cancelled")
        _must_be(a, OPEN + HOLDING, "cancelled")
        side: list[SideItem] = []
        if a["status"] in HOLDING:
            rules = await self.rules(a["businessId"])
            side = [TakeFrom(name, "held", 1) for name in rules.slots(datetime.fromisoformat(a["at"]), int(a["minutes"]))]
        event = _event("AppointmentCancelled", a, by, source, reason=_reason(body),
                       content=texts.cancelled_text(a, language, by))
        return event, side, "cancelled"

    async def _no_show(self, a: dict[str, Any], body: dict[str, Any], by: str, language: str,
                       source: str | None) -> tuple[Event, list[SideItem], str]:
        _must_be(a, HOLDING, "marked no-show")
        start = datetime.fromisoformat(a["at"])
        if start > utc_now():
            raise HttpError(409, "the appointment has not started yet")
        return _event("AppointmentNoShow", a, "owner", source), [], "no-show"

    async def _with_send(self, event: Event, appointment: dict[str, Any], language: str) -> tuple[Event, str]:
        """The message's `send`: free text inside the channel's window, else the business's template
        for its purpose; without one it is recorded as closed and not sent (the action still holds)
        and the second value says why ('' when it goes out)."""
        payload: Any = event.payload
        if not getattr(payload, "content", ""):
            return event, ""
        info = await self._directory.info(event.businessId) or {}
        values = {"text": payload.content, "service": appointment.get("service") or "",
                  "when": str(getattr(payload, "at", None) or appointment.get("at") or "").replace("T", " ")[:16],
                  "business": str(info.get("name") or event.businessId)}
        purpose, unsent = PURPOSES.get(event.type, ""), ""
        try:
            send = templates.plan(event.channel, purpose, appointment.get("lastInboundAt"), utc_now(),
                                  (info.get("settings") or {}).get("templates"), language, values, language)
        except templates.NoTemplate as exc:
            send, unsent = {"window": "closed"}, str(exc)
        return event.model_copy(update={"payload": payload.model_copy(update={"send": OutboundSend(**send)})}), unsent

    async def _language(self, business_id: str) -> str:
        info = await self._directory.info(business_id) or {}
        return str(info.get("language") or "en")


PURPOSES = {"AppointmentConfirmed": "appointmentConfirmed", "AppointmentProposed": "appointmentProposed",
            "AppointmentDeclined": "appointmentDeclined", "AppointmentCancelled": "appointmentCancelled"}


def _must_be(a: dict[str, Any], allowed: tuple[str, ...], verb: str) -> None:
    if a["status"] not in allowed:
        raise HttpError(409, f"the appointment is {a['status']}: it cannot be {verb}")


def _refusal(exc: SideRefused, a: dict[str, Any]) -> HttpError:
    if any(n.startswith("appointment:") for n in exc.names):
        return HttpError(409, "the appointment was changed meanwhile: read it again")
    slots = ", ".join(n.removeprefix("slot:").replace("T", " ") for n in exc.names)
    return HttpError(409, f"no place left at {slots}")


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > 500:
        raise HttpError(400, "reason must be a string of at most 500 characters")
    return reason


def _local_time(value: Any, rules: BookingRules) -> str:
    """`at` as a local ISO time with the business's offset; 400 for anything else."""
    if not isinstance(value, str) or len(value.strip()) <= 10:
        raise HttpError(400, 'at must be a local date and time, e.g. "2030-01-10T11:30"')
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"at is not an ISO date and time: {value!r}") from None
    moment = moment.astimezone(rules.zone) if moment.tzinfo else moment.replace(tzinfo=rules.zone)
    return moment.isoformat(timespec="seconds")


def _event(kind: str, a: dict[str, Any], by: str, source: str | None, **payload: Any) -> Event:
    return new_event(kind, business_id=a["businessId"], user_id=a["userId"], channel=a.get("channel") or "system",
                     event_id=derive_id(kind, a["appointmentId"], source) if source else None,
                     payload={"appointmentId": a["appointmentId"], "by": by, "sourceEventId": source,
                              "deliverTo": dict(a.get("deliverTo") or {}), **payload})


def _range(start: str | None, end: str | None, rules: BookingRules, now: datetime) -> tuple[str, str]:
    """[start, end) as UTC ISO strings: dates are local days (end inclusive), times as given."""
    zone = rules.zone

    def parse(value: str, is_end: bool) -> datetime:
        try:
            if len(value) == 10:
                day = date.fromisoformat(value) + timedelta(days=1 if is_end else 0)
                return datetime.combine(day, datetime.min.time(), zone)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=zone)
        except ValueError:
            raise HttpError(400, f"{'to' if is_end else 'from'} must be an ISO date or time, got {value!r}") from None

    today = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone)
    begin = parse(start, False) if start else today
    finish = parse(end, True) if end else begin + timedelta(days=7)
    if finish <= begin or finish - begin > timedelta(days=MAX_RANGE_DAYS):
        raise HttpError(400, f"from must come before to, at most {MAX_RANGE_DAYS} days apart")
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    return begin.astimezone(timezone.utc).strftime(fmt), finish.astimezone(timezone.utc).strftime(fmt)


def appointment_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An appointment as the API lists it (its status read at `now`)."""
    keys = ("appointmentId", "userId", "at", "day", "service", "minutes", "by", "requestedAt", "updatedAt", "channel", "reason")
    view = {k: row.get(k) for k in keys}
    view["status"] = status_at(row, now)
    view["startsAt"] = row.get("startsAt") if len(row.get("at") or "") > 10 else None
    return view
