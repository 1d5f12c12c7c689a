"""The conversation fold: one customer's events → session, message and memory items.

Pure and deterministic: the state is the `rag-dynamic-user` item itself (it carries
`lastSeq`), time is the events' time, ids are derived from the log. Applying an event
returns the new memory and the session and message items to write (invariants 4 and 5).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentstream.events import (
    DeliveryFailed, Event, MessageReceived, ReplyDelivered, ReplyGenerated, SessionClosed, SessionExpired,
    SessionResolved, derive_id, iso,
)
from agentstream.projections.topics import extract_topics

RECENT_TOPICS = 10
TOPIC_COUNTS = 50
LAST_MESSAGES = 4
CONTENT_LIMIT = 1000
SUMMARY_LIMIT = 300
END_STATUS = {SessionExpired: "abandoned", SessionResolved: "resolved", SessionClosed: "closed"}


@dataclass(frozen=True)
class FoldConfig:
    idle_minutes: int = 60
    business_type: str = "general"


@dataclass(frozen=True)
class Projection:
    memory: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def empty_memory(business_id: str, user_id: str) -> dict[str, Any]:
    return {
        "businessId": business_id,
        "userId": user_id,
        "lastSeq": 0,
        "history": {"totalMessages": 0, "totalSessions": 0, "channels": [], "topicCounts": {}},
        "summary": "",
    }


def active_session(memory: dict[str, Any]) -> dict[str, Any] | None:
    """The session context if the customer has an active session."""
    ctx = memory.get("sessionContext")
    return ctx if ctx and ctx.get("status") == "active" else None


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _source(channel: str) -> str:
    return "websocket" if channel == "websocket" else "cron" if channel == "system" else "webhook"


def _session_item(ctx: dict[str, Any], event: Event, config: FoldConfig) -> dict[str, Any]:
    return {
        "sessionId": ctx["sessionId"],
        "businessId": event.businessId,
        "locationId": ctx["locationId"],
        "userId": event.userId,
        "status": ctx["status"],
        "createdAt": ctx["startedAt"],
        "updatedAt": iso(event.occurredAt),
        "lastMessageAt": ctx["lastMessageAt"],
        "metadata": {
            "businessType": config.business_type,
            "context": {"channel": ctx["channel"], "messageCount": ctx["conversationLength"]},
        },
        "lastSeq": event.seq,
    }


def _message_item(event: Event, session_id: str, kind: str, content: str, external_id: str | None,
                  response_id: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"source": _source(event.channel), "channel": event.channel}
    if external_id:
        metadata["externalId"] = external_id
    if response_id:
        metadata["responseId"] = response_id
    return {
        "messageId": event.eventId,
        "sessionId": session_id,
        "businessId": event.businessId,
        "userId": event.userId,
        "content": content,
        "type": kind,
        "timestamp": iso(event.occurredAt),
        "metadata": metadata,
        "seq": event.seq,
    }


def _new_session(event: Event) -> dict[str, Any]:
    at = iso(event.occurredAt)
    return {
        "sessionId": derive_id("session", event.streamId, str(event.seq)),
        "status": "active",
        "startedAt": at,
        "lastMessageAt": at,
        "locationId": event.locationId or "default",
        "channel": event.channel,
        "conversationLength": 0,
        "recentTopics": [],
        "lastMessages": [],
    }


def _record_turn(ctx: dict[str, Any], event: Event, role: str, content: str) -> None:
    at = iso(event.occurredAt)
    short = content[:CONTENT_LIMIT]
    ctx["lastMessageAt"] = at
    ctx["conversationLength"] += 1
    ctx["lastMessage"] = {"content": short, "type": role, "timestamp": at}
    turn = {"role": role, "content": short, "timestamp": at, "eventId": event.eventId}
    ctx["lastMessages"] = [*ctx["lastMessages"], turn][-LAST_MESSAGES:]


def _record_history(memory: dict[str, Any], event: Event, topics: list[str]) -> None:
    history = memory["history"]
    at = iso(event.occurredAt)
    history["totalMessages"] += 1
    history.setdefault("firstSeenAt", at)
    history["lastSeenAt"] = at
    if event.channel not in history["channels"]:
        history["channels"] = sorted([*history["channels"], event.channel])
    counts = history["topicCounts"]
    for topic in topics:
        counts[topic] = counts.get(topic, 0) + 1
    if len(counts) > TOPIC_COUNTS:
        kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOPIC_COUNTS]
        history["topicCounts"] = dict(kept)
    memory["summary"] = _summary(history)


def _summary(history: dict[str, Any]) -> str:
    top = sorted(history["topicCounts"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    text = (
        f"Customer since {history.get('firstSeenAt', '')[:10]}; {history['totalMessages']} messages in "
        f"{history['totalSessions']} sessions; channels: {', '.join(history['channels'])}"
    )
    if top:
        text += "; topics: " + ", ".join(t for t, _ in top)
    return text[:SUMMARY_LIMIT]


def _expired(ctx: dict[str, Any], at: datetime, idle_minutes: int) -> bool:
    return at - _time(ctx["lastMessageAt"]) > timedelta(minutes=idle_minutes)


def _on_message(memory: dict[str, Any], event: MessageReceived, config: FoldConfig) -> Projection:
    sessions: list[dict[str, Any]] = []
    ctx = active_session(memory)
    if ctx and _expired(ctx, event.occurredAt, config.idle_minutes):
        ctx["status"] = "abandoned"
        sessions.append(_session_item(ctx, event, config))
        ctx = None
    if ctx is None:
        ctx = _new_session(event)
        memory["sessionContext"] = ctx
        memory["history"]["totalSessions"] += 1
    content = event.payload.content
    topics = extract_topics(content)
    _record_turn(ctx, event, "user", content)
    ctx["recentTopics"] = ([t for t in ctx["recentTopics"] if t not in topics] + topics)[-RECENT_TOPICS:]
    _record_history(memory, event, topics)
    sessions.append(_session_item(ctx, event, config))
    message = _message_item(event, ctx["sessionId"], "user", content, event.payload.externalId)
    return Projection(memory, sessions, [message])


def _on_reply(memory: dict[str, Any], event: ReplyGenerated, config: FoldConfig) -> Projection:
    ctx = active_session(memory)
    session_id = event.payload.sessionId or (ctx or {}).get("sessionId", "none")
    message = _message_item(event, session_id, "agent", event.payload.content, None, event.payload.inReplyTo)
    _record_history(memory, event, [])
    if ctx is None or ctx["sessionId"] != session_id:
        return Projection(memory, [], [message])
    _record_turn(ctx, event, "agent", event.payload.content)
    return Projection(memory, [_session_item(ctx, event, config)], [message])


def _on_session_end(memory: dict[str, Any], event: SessionExpired | SessionResolved | SessionClosed,
                    config: FoldConfig) -> Projection:
    ctx = active_session(memory)
    if ctx is None or ctx["sessionId"] != event.payload.sessionId:
        return Projection(memory)
    if isinstance(event, SessionExpired) and not _expired(ctx, event.occurredAt + timedelta(seconds=1), config.idle_minutes):
        return Projection(memory)  # the customer wrote again after the expiry was decided
    ctx["status"] = END_STATUS[type(event)]
    return Projection(memory, [_session_item(ctx, event, config)])


def apply(memory: dict[str, Any], event: Event, config: FoldConfig) -> Projection:
    """Apply one event (seq > lastSeq) to a conversation's memory; duplicates change nothing."""
    if event.seq <= int(memory["lastSeq"]):
        return Projection(memory)
    state = copy.deepcopy(memory)
    state["lastSeq"] = event.seq
    state["updatedAt"] = iso(event.occurredAt)
    if isinstance(event, MessageReceived):
        return _on_message(state, event, config)
    if isinstance(event, ReplyGenerated):
        return _on_reply(state, event, config)
    if isinstance(event, (SessionExpired, SessionResolved, SessionClosed)):
        return _on_session_end(state, event, config)
    assert isinstance(event, (ReplyDelivered, DeliveryFailed))
    return Projection(state)


def fold(events: Iterable[Event], config: FoldConfig, business_id: str, user_id: str
         ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Fold a conversation's events in seq order: the final memory, sessions and messages."""
    memory = empty_memory(business_id, user_id)
    sessions: dict[str, dict[str, Any]] = {}
    messages: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.seq):
        projection = apply(memory, event, config)
        memory = projection.memory
        sessions.update((s["sessionId"], s) for s in projection.sessions)
        messages.update((m["messageId"], m) for m in projection.messages)
    return memory, sessions, messages
