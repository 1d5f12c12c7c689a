"""The worker's hook after a new reply: a customer message asking for an appointment becomes
`AppointmentRequested` (author `customer`).

The request is read by the same deterministic extractor the facts fold uses, so the appointment
exists as an event of the log from then on: a later change of extractor refolds the facts but
never drops a request the owner has confirmed. Its appointment id and its event id derive from the
inbound's eventId and the append is once per inbound (`appointment:<eventId>`), so a retry, a
redelivery or a second worker appends it once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from agentstream import metrics
from agentstream.events import Event, MessageReceived, derive_id, new_event
from agentstream.projections.appointment_answers import answer_of, answered
from agentstream.projections.extraction import extract
from agentstream.projections.facts import business_zone
from agentstream.streams.ports import EventLog

log = structlog.get_logger(__name__)
AfterReply = Callable[[MessageReceived, dict[str, Any]], Awaitable[None]]


def appointment_id(inbound_event_id: str) -> str:
    """The id of the appointment a customer's message asked for."""
    return derive_id("appointment", inbound_event_id)


def request_key(inbound_event_id: str) -> str:
    """The idempotency id of the request read from an inbound message."""
    return f"appointment:{inbound_event_id}"


def requested(inbound: MessageReceived, timezone: str) -> dict[str, Any] | None:
    """The appointment `inbound` asks for ({"at", "service"}), None if it asks for none."""
    if inbound.payload.kind != "text" or not inbound.payload.content.strip():
        return None
    said = extract(inbound.payload.content, inbound.occurredAt, business_zone(timezone))
    if said.cancel:
        return None
    return next((value for kind, value in said.facts if kind == "appointment"), None)


def request_event(inbound: MessageReceived, found: dict[str, Any], session_id: str = "") -> Event:
    return new_event("AppointmentRequested", event_id=derive_id("appointment-requested", inbound.eventId),
                     business_id=inbound.businessId, user_id=inbound.userId, location_id=inbound.locationId,
                     channel=inbound.channel,
                     payload={"appointmentId": appointment_id(inbound.eventId), "by": "customer", "at": found["at"],
                              "service": found.get("service"), "sourceEventId": inbound.eventId,
                              "deliverTo": dict(inbound.payload.replyTo), "sessionId": session_id})


class AppointmentRequester:
    """Appends the request of an inbound that asks for an appointment (at most once per inbound)."""

    def __init__(self, store: EventLog, notify: Callable[[Event], Awaitable[None]] | None = None) -> None:
        """`notify`: tells the owner of a new request as of a handoff (agent.handoffs.v1, the webhook)."""
        self._store = store
        self._notify = notify

    async def __call__(self, inbound: MessageReceived, info: dict[str, Any]) -> None:
        """Never raises: a failure is logged and the conversation goes on (a redelivery tries again)."""
        try:
            found = requested(inbound, str(info.get("timezone") or "UTC"))
            if found is None:
                return
            result = await self._store.append(request_event(inbound, found), external_id=request_key(inbound.eventId))
            if not result.duplicate:
                metrics.EVENTS_APPENDED.labels(type="AppointmentRequested", channel=inbound.channel).inc()
                if self._notify is not None:
                    await self._notify(result.event)
            log.info("appointment.requested", eventId=result.event.eventId, inboundEventId=inbound.eventId,
                     duplicate=result.duplicate)
        except Exception as exc:  # noqa: BLE001 - the reply is out; nothing here may stop the worker
            log.warning("appointment.request_failed", inboundEventId=inbound.eventId, error=type(exc).__name__,
                        detail=str(exc)[:200])


def chained(*hooks: AfterReply | None) -> AfterReply | None:
    """The hooks (those given) called in order after each new reply; None if none is given."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None

    async def run(inbound: MessageReceived, info: dict[str, Any]) -> None:
        for hook in present:
            await hook(inbound, info)

    return run


class Answerer(Protocol):
    async def customer_state(self, business_id: str, user_id: str) -> dict[str, Any]: ...

    async def act_on(self, appointment: dict[str, Any], head: int, action: str, body: dict[str, Any], by: str,
                     source_event_id: str | None = None, key: str | None = None) -> dict[str, Any]: ...


def answer_key(inbound_event_id: str) -> str:
    return f"appointment-answer:{inbound_event_id}"


class AppointmentAnswers:
    """A customer's "da" to a proposal confirms it, "anulez" cancels their appointment (author
    `customer`), once per inbound. A refusal (the place was taken meanwhile) is logged: the
    proposal stays open for the owner."""

    def __init__(self, bookings: Answerer) -> None:
        self._bookings = bookings

    async def __call__(self, inbound: MessageReceived, info: dict[str, Any]) -> None:
        if inbound.payload.kind != "text" or answer_of(inbound.payload.content) is None:
            return
        try:
            state = await self._bookings.customer_state(inbound.businessId, inbound.userId)
            found = answered(state, inbound.payload.content, inbound.occurredAt)
            if found is None:
                return
            action, appointment = found
            done = await self._bookings.act_on({**appointment, "businessId": inbound.businessId, "userId": inbound.userId,
                                                "lastInboundAt": state.get("lastInboundAt")},
                                               int(state["lastSeq"]), action, {}, "customer", inbound.eventId,
                                               answer_key(inbound.eventId))
            log.info("appointment.answered", inboundEventId=inbound.eventId, action=action, **done)
        except Exception as exc:  # noqa: BLE001 - an HttpError (a refused move) or a store failure
            log.warning("appointment.answer_refused", inboundEventId=inbound.eventId, error=type(exc).__name__,
                        detail=str(exc)[:200])
