"""Messages to the customer as the widget sees them, and the ones a conversation has not yet
received: replies, a person's messages and the handoff notice (the outbound events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from agentstream import idempotency as keys
from agentstream import metrics
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.events import OUTBOUND_TYPES, Event, ReplyDelivered, new_event

log = structlog.get_logger(__name__)

RECENT_EVENTS = 100


def reply_frame(reply: Event) -> dict[str, Any]:
    """The widget's frame of an outbound event; `author` is "human" for a person's message."""
    payload: Any = reply.payload
    return {
        "type": "reply",
        "text": payload.content,
        "inReplyTo": getattr(payload, "inReplyTo", None),
        "covers": list(getattr(payload, "covers", None) or []),  # the clientMessageIds a (burst's) reply answers
        "sessionId": payload.sessionId,
        "eventId": reply.eventId,
        "author": "human" if reply.type == "OwnerReplied" else "ai",
    }


async def pending_replies(store: EventStore, stream: str, after: str | None = None) -> list[Event]:
    """Recent outbound events of a conversation the customer may not have, in log order.

    With `after` (an event id the widget holds: its oldest unanswered message, or else the last
    reply it showed), every outbound event after that one: a frame written to a socket whose
    gateway died before the widget read it is marked delivered yet never arrived, and the widget
    drops the ones it has by eventId. Without it (or with an id not among the recent events),
    those with no ReplyDelivered yet."""
    head = await store.head(stream)
    events = await store.read(stream, after_seq=max(0, head - RECENT_EVENTS))
    outbound = [e for e in events if e.type in OUTBOUND_TYPES and not live_only(e)]
    cursor = next((e.seq for e in events if e.eventId == after), None) if after else None
    if cursor is not None:
        return [e for e in outbound if e.seq > cursor]
    delivered = {e.payload.replyEventId for e in events if isinstance(e, ReplyDelivered)}
    return [e for e in outbound if e.eventId not in delivered]


def live_only(event: Event) -> bool:
    """A nudge goes to a customer who is there: a widget connected when it was sent; it is not
    caught up on (re)connect (nor could the log alone tell whether the fold let it stand); a
    reminder likewise (its fold may have refused it)."""
    return event.type in ("NudgeSent", "ReminderSent")


@dataclass(frozen=True)
class Sent:
    """A reply the vendor accepted, with the vendor's id for it (if it gave one)."""

    external_id: str | None


def _claim_name(reply: Event) -> str:
    return keys.sending(reply.eventId)


class DeliveryLog:
    """ReplyDelivered / DeliveryFailed in the conversation's log (keyed `delivered:<eventId>`):
    the record that an outbound event was sent, checked before sending."""

    def __init__(self, store: EventStore, heads: SettledHeads | None = None) -> None:
        """`heads`: where a gateway remembers the record it appended as its conversation's head
        (the customer has their reply: the conversation is at rest)."""
        self._store = store
        self._heads = heads

    async def done(self, reply: Event) -> bool:
        return await self._store.has(reply.businessId, keys.delivered(reply.eventId))

    async def claim(self, reply: Event, owner: str, hold_ms: int) -> bool:
        """The right to send `reply` for `hold_ms` (`sending:<eventId>`): one process at a time,
        even two that both believe they own its partition (one evicted from the group, not yet
        told); never again once it is marked sent."""
        return await self._store.claim(reply.businessId, _claim_name(reply), reply.streamId, owner, hold_ms)

    async def mark_sent(self, reply: Event, external_id: str | None) -> None:
        """The vendor accepted `reply`: said on its claim at once, one uncontended write (the
        record in the log is an append, which may have to wait for the conversation's head)."""
        await self._store.mark_claim(reply.businessId, _claim_name(reply), {"sentAs": external_id} if external_id else {})

    async def sent_before(self, reply: Event) -> Sent | None:
        """`reply` as a process that died before recording it sent it, if one did."""
        marks = await self._store.claim_marks(reply.businessId, _claim_name(reply))
        return None if marks is None else Sent(marks.get("sentAs"))

    async def record(self, reply: Event, kind: str, payload: dict[str, Any]) -> None:
        event = new_event(
            kind, business_id=reply.businessId, user_id=reply.userId, channel=reply.channel,
            location_id=reply.locationId, payload={"replyEventId": reply.eventId, **payload},
        )
        sent = payload.get("externalId")  # the reply is nearly always still the head: no head read
        result = await self._store.append(event, external_id=keys.delivered(reply.eventId),
                                          aliases=(keys.sent(sent),) if sent else (), head=reply.seq)
        if self._heads is not None and not result.duplicate:
            self._heads.settle(reply.streamId, result.event.seq)
        outcome = "delivered" if kind == "ReplyDelivered" else "failed"
        metrics.DELIVERIES.labels(channel=reply.channel, outcome=outcome).inc()
        log.info("delivery." + outcome, eventId=reply.eventId, streamId=reply.streamId, channel=reply.channel)
