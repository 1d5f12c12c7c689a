"""Replies as the widget sees them, and the ones a conversation has not yet received."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.event_store import EventStore
from agentstream.events import ReplyDelivered, ReplyGenerated

RECENT_EVENTS = 100


def reply_frame(reply: ReplyGenerated) -> dict[str, Any]:
    return {
        "type": "reply",
        "text": reply.payload.content,
        "inReplyTo": reply.payload.inReplyTo,
        "sessionId": reply.payload.sessionId,
        "eventId": reply.eventId,
    }


async def pending_replies(store: EventStore, stream: str) -> list[ReplyGenerated]:
    """Recent replies of a conversation with no ReplyDelivered yet, in log order."""
    head = await store.head(stream)
    events = await store.read(stream, after_seq=max(0, head - RECENT_EVENTS))
    delivered = {e.payload.replyEventId for e in events if isinstance(e, ReplyDelivered)}
    return [e for e in events if isinstance(e, ReplyGenerated) and e.eventId not in delivered]
