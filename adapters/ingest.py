"""One ingestion path for every channel: normalised message → MessageReceived in the log."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from agentstream import idempotency as keys
from agentstream import channel_specs, metrics
from agentstream.adapters.dynamo.event_store import AppendResult, EventStore
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.events import new_event

log = structlog.get_logger(__name__)
MAX_CONTENT_CHARS = 16_000


def idempotency_key(msg: "InboundMessage") -> str:
    """The key a resent message is recognised by: the channel's own message id (Twilio's
    MessageSid, Meta's mid, Gmail's id), or, for ids a client chooses, that id per customer."""
    return keys.inbound(msg.channel, msg.external_id, msg.user_id if channel_specs.client_ids(msg.channel) else None)


@dataclass(frozen=True)
class InboundMessage:
    business_id: str
    user_id: str
    channel: str
    external_id: str
    content: str
    occurred_at: datetime | None = None
    content_type: str = "text/plain"
    attachments: tuple[dict[str, Any], ...] = ()
    reply_to: dict[str, str] | None = None
    location_id: str | None = None
    kind: str = "text"  # text, reaction, button, location, contact, unsupported
    payload_id: str | None = None  # what a tapped button or quick reply carries
    reacts_to: str | None = None  # the channel's id of the message reacted to


class Ingestor:
    def __init__(self, store: EventStore, heads: SettledHeads | None = None) -> None:
        """`heads`: the gateway's guesses of conversations' heads (adapters/settled_heads.py)."""
        self._store = store
        self._heads = heads

    async def _reacted_to(self, msg: InboundMessage) -> str | None:
        """The eventId of the message a reaction is to: a reply we sent (by the vendor's id of it)
        or the customer's own message; None when the log has neither."""
        if not msg.reacts_to:
            return None
        for key in (keys.sent(msg.reacts_to), idempotency_key(replace(msg, external_id=msg.reacts_to))):
            found = await self._store.find(msg.business_id, key)
            if found is not None:
                return getattr(found.payload, "replyEventId", None) or found.eventId
        return None

    async def ingest(self, msg: InboundMessage) -> AppendResult:
        """Append once per (business, `idempotency_key`); a retry returns the first event."""
        event = new_event(
            "MessageReceived",
            business_id=msg.business_id,
            user_id=msg.user_id,
            channel=msg.channel,
            location_id=msg.location_id,
            occurred_at=msg.occurred_at,
            payload={
                "content": msg.content[:MAX_CONTENT_CHARS],
                "externalId": msg.external_id,
                "contentType": msg.content_type,
                "attachments": [dict(a) for a in msg.attachments],
                "replyTo": dict(msg.reply_to or {}),
                "kind": msg.kind,
                "payloadId": msg.payload_id,
                "reactsTo": await self._reacted_to(msg),
            },
        )
        guess = self._heads.take(event.streamId) if self._heads is not None else None
        result = await self._store.append(event, external_id=idempotency_key(msg), head=guess, guessed=guess is not None)
        if self._heads is not None:  # a record settled while this message was appended is no longer the head
            self._heads.drop(event.streamId)
        if result.duplicate:
            metrics.INGEST_DUPLICATES.labels(channel=msg.channel).inc()
        else:
            metrics.EVENTS_APPENDED.labels(type="MessageReceived", channel=msg.channel).inc()
        log.info("ingest.message", eventId=result.event.eventId, streamId=result.event.streamId,
                 seq=result.event.seq, channel=msg.channel, duplicate=result.duplicate)
        return result
