"""Applies one conversation's events in seq order: projections, then the reply (invariants 1, 3-5).

For each event: duplicates (seq <= lastSeq) are skipped, a gap is filled from the log, the
pure fold computes the new items, a MessageReceived gets its one reply (appended to the log
before it is published), and the projected items are written in one transaction. When the
reply lands right after its inbound (the usual case), it is folded at once and written in the
same transaction, so its own arrival from the topic is a duplicate that costs nothing. Every
step is idempotent, so a crash anywhere is repaired by processing the event again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from agentstream import metrics
from agentstream.adapters.business import BusinessDirectory, idle_minutes
from agentstream.adapters.event_store import EventStore, event_from_item
from agentstream.adapters.llm import Responder
from agentstream.adapters.projection_store import ProjectionStore, StaleWrite
from agentstream.events import IMPORTED, Event, MessageReceived, new_event, reply_event_id, utc_now
from agentstream.projections.context import ReplyContext
from agentstream.projections.conversation import FoldConfig, active_session, apply, empty_memory
from agentstream.projections.timecontext import time_context
from agentstream.projections.topics import detect_language

log = structlog.get_logger(__name__)
PublishReply = Callable[[Event], Awaitable[None]]
REPLY_LOOKAHEAD = 4  # events after an inbound read to find its reply (and the head) in one query


def reply_key(inbound_event_id: str) -> str:
    return f"reply:{inbound_event_id}"


class ConversationProcessor:
    def __init__(
        self,
        store: EventStore,
        projections: ProjectionStore,
        directory: BusinessDirectory,
        responder: Responder,
        publish_reply: PublishReply,
        default_idle_minutes: int = 60,
        cache_size: int = 20_000,
    ) -> None:
        self._store = store
        self._projections = projections
        self._directory = directory
        self._responder = responder
        self._publish_reply = publish_reply
        self._idle = default_idle_minutes
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    async def handle(self, event: Event) -> None:
        """Apply an event of a conversation (and any missing ones before it)."""
        memory = await self._memory(event)
        if memory is None:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="forgotten").inc()
            return
        last = int(memory["lastSeq"])
        if event.seq <= last:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="duplicate").inc()
            return
        pending = [event]
        if event.seq > last + 1:
            missing = await self._store.read(event.streamId, after_seq=last, limit=event.seq - last - 1)
            log.info("worker.gap_filled", streamId=event.streamId, after=last, upto=event.seq, found=len(missing))
            pending = [*missing, event]
        for item in pending:
            if item.seq > int(memory["lastSeq"]):  # a reply folded with its inbound is done
                memory = await self._apply(memory, item)

    async def _memory(self, event: Event) -> dict[str, Any] | None:
        """The conversation's state; None for an event of a user erased after it happened."""
        cached = self._cache.get(event.streamId)
        if cached is not None:
            self._cache.move_to_end(event.streamId)
            return cached
        stored = await self._projections.load_memory(event.businessId, event.userId)
        if stored is not None:
            return stored
        forgotten_at = await self._store.forgotten_at(event.businessId, event.userId)
        if forgotten_at is not None and event.occurredAt <= forgotten_at:
            return None
        return empty_memory(event.businessId, event.userId)

    def _remember(self, stream: str, memory: dict[str, Any]) -> None:
        self._cache[stream] = memory
        self._cache.move_to_end(stream)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _apply(self, memory: dict[str, Any], event: Event) -> dict[str, Any]:
        info = await self._directory.info(event.businessId) or {}
        config = FoldConfig(idle_minutes(info, self._idle), str(info.get("businessType", "general")))
        projection = apply(memory, event, config)
        memory, sessions, messages = projection.memory, projection.sessions, projection.messages
        applied = [event.type]
        if isinstance(event, MessageReceived) and IMPORTED not in event.payload.replyTo:
            reply = await self._reply(event, memory, info)
            if reply.seq == event.seq + 1:  # next in the log: its effects go in the same write
                folded = apply(memory, reply, config)
                memory, messages = folded.memory, [*messages, *folded.messages]
                sessions = list({s["sessionId"]: s for s in (*sessions, *folded.sessions)}.values())
                applied.append(reply.type)
        try:
            await self._projections.write(memory, sessions, messages)
        except StaleWrite:
            self._cache.pop(event.streamId, None)
            log.info("worker.stale_memory_reloaded", streamId=event.streamId, seq=event.seq)
            return await self._projections.load_memory(event.businessId, event.userId) or memory
        self._remember(event.streamId, memory)
        for kind in applied:
            metrics.WORKER_EVENTS.labels(type=kind, outcome="applied").inc()
        return memory

    async def _reply(self, inbound: MessageReceived, memory: dict[str, Any], info: dict[str, Any]) -> Event:
        """The one reply to an inbound message: the model is asked only if the log has none."""
        reply, head = await self._logged_reply(inbound)
        if reply is None:
            answer = await self._responder.answer(await self._context(inbound, memory, info))
            session = active_session(memory) or {}
            draft = new_event(
                "ReplyGenerated",
                event_id=reply_event_id(inbound.eventId),
                business_id=inbound.businessId,
                user_id=inbound.userId,
                location_id=inbound.locationId,
                channel=inbound.channel,
                payload={
                    "content": answer.content,
                    "inReplyTo": inbound.eventId,
                    "sessionId": session.get("sessionId", ""),
                    "model": answer.model,
                    "latencyMs": answer.latency_ms,
                    "usage": {"promptTokens": answer.prompt_tokens, "completionTokens": answer.completion_tokens},
                    "fallback": answer.fallback,
                    "deliverTo": dict(inbound.payload.replyTo),
                },
            )
            reply = (await self._store.append(draft, external_id=reply_key(inbound.eventId), head=head)).event
            metrics.EVENTS_APPENDED.labels(type="ReplyGenerated", channel=inbound.channel).inc()
            metrics.REPLY_LATENCY.observe(max(0.0, (utc_now() - inbound.occurredAt).total_seconds()))
            log.info("worker.reply_appended", eventId=reply.eventId, inReplyTo=inbound.eventId, streamId=inbound.streamId)
        await self._publish_reply(reply)
        return reply

    async def _logged_reply(self, inbound: MessageReceived) -> tuple[Event | None, int | None]:
        """The inbound's reply if the log has it; else None and the stream's head (None: not read).

        A reply follows its inbound in the same stream, nearly always within a few events, so
        one query of the events after the inbound answers both questions; past those, the
        reply's idempotency record does. Only the reply is parsed: an event this build cannot
        read further on is its own record's business, not this one's."""
        later = await self._store.read_items(inbound.streamId, after_seq=inbound.seq, limit=REPLY_LOOKAHEAD)
        for item in later:
            if item.get("type") == "ReplyGenerated" and (item.get("payload") or {}).get("inReplyTo") == inbound.eventId:
                return event_from_item(item), None
        if len(later) < REPLY_LOOKAHEAD:
            return None, int(later[-1]["seq"]) if later else inbound.seq
        return await self._store.find(inbound.businessId, reply_key(inbound.eventId)), None

    async def _context(self, inbound: MessageReceived, memory: dict[str, Any], info: dict[str, Any]) -> ReplyContext:
        business_type = str(info.get("businessType", "general"))
        text = inbound.payload.content
        return ReplyContext(
            business=info,
            system_instructions=await self._directory.system_instructions(business_type),
            rag_entries=await self._directory.rag_entries(inbound.businessId),
            memory=memory,
            time=time_context(inbound.occurredAt, str(info.get("timezone", "UTC")), info.get("openingHours") or {}),
            message=text,
            language=detect_language(text) if text.strip() else str(info.get("language", "en")),
            inbound_event_id=inbound.eventId,
        )
