"""Messages to the customer as the widget sees them, and the ones a conversation has not yet
received: replies, a person's messages and the handoff notice (the outbound events)."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.event_store import EventStore
from agentstream.events import OUTBOUND_TYPES, Event, ReplyDelivered

RECENT_EVENTS = 100


def reply_frame(reply: Event) -> dict[str, Any]:
    """The widget's frame of an outbound event; `author` is "human" for a person's message."""
    payload: Any = reply.payload
    return {
        "type": "reply",
        "text": payload.content,
        "inReplyTo": getattr(payload, "inReplyTo", None),
        "sessionId": payload.sessionId,
        "eventId": reply.eventId,
        "author": "human" if reply.type == "OwnerReplied" else "ai",
    }


async def pending_replies(store: EventStore, stream: str) -> list[Event]:
    """Recent outbound events of a conversation with no ReplyDelivered yet, in log order."""
    head = await store.head(stream)
    events = await store.read(stream, after_seq=max(0, head - RECENT_EVENTS))
    delivered = {e.payload.replyEventId for e in events if isinstance(e, ReplyDelivered)}
    return [e for e in events if e.type in OUTBOUND_TYPES and e.eventId not in delivered]
