"""The conversation fold: one customer's events → session, message and memory items.

Pure and deterministic (docs/architecture.md: "one active session", "replay gives the same tables"):
the state is the `rag-dynamic-user` item itself
(it carries `lastSeq`), time is the events' time, ids are derived from the log. `apply` returns
the new memory and the session and message items to write; it never mutates its input and
costs O(1) per event, whatever the history length (the memory item is bounded).

A reaction is a message item of its session (`metadata.kind` "reaction", `reactsTo`) but not a
turn: it neither keeps the session alive nor opens the vendor's 24-hour window. What became of
the messages we sent (a vendor's delivered / read / failed, our own DeliveryFailed) is kept per
message in the memory's `replyStatus` (the most recent MAX_STATUSES messages with one).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from agentstream import channel_specs
from agentstream.events import (
    AppointmentCancelled, AppointmentConfirmed, AppointmentDeclined, AppointmentNoShow, AppointmentProposed, ReminderSent,
    CustomerOptedIn, CustomerOptedOut, DeliveryFailed, Event, HandoffNoticeSent, HandoffReleased, HandoffRequested, MediaRefused,
    MediaStored, MediaTranscribed, MessageReceived, NudgeSent,
    OwnerReplied, ReplyGenerated, ReplyStatusReported, SessionClosed, SessionExpired, SessionResolved, derive_id, iso,
)
from agentstream.projections.kinds import is_reaction
from agentstream.projections.optout import opted_out
from agentstream.projections import nudge as nudges
from agentstream.projections import reminders
from agentstream.projections import templates
from agentstream.projections.base import FoldConfig, Put
from agentstream.projections.handoff import handoff_of
from agentstream.projections.topics import detect_language, extract_topics

RECENT_TOPICS = 10
TOPIC_COUNTS = 50
SUMMARY_TOPICS = 5
LAST_MESSAGES = 4
CARRIED = 3  # the business's last messages sent while no session was live, carried into the next one
CARRY_DAYS = 7  # older carried messages are dropped when the next session opens
MEDIA_KINDS = ("image", "audio", "document")
CONTENT_LIMIT = 1000
SUMMARY_LIMIT = 300
NO_SESSION = "none"  # sessionId of an agent message that names no session (a key: never empty)
END_STATUS: dict[type, str] = {SessionExpired: "abandoned", SessionResolved: "resolved", SessionClosed: "closed"}
SessionEnd = SessionExpired | SessionResolved | SessionClosed
Item = dict[str, Any]
DUE_SHARDS = 8  # partitions of the sessions' due index (dueShard 0..7); the expiry timer queries each
MAX_BOOKED = 20  # confirmed appointments ahead the memory keeps (a reminder shows only for one of them)
MAX_STATUSES = 20  # messages whose delivery status the memory keeps (the most recently reported)
STATUS_RANK = {"delivered": 1, "read": 2, "failed": 3}  # a vendor's; they report out of order: the furthest stands
EXCERPT = 80  # characters of the message a reaction is to, kept with the reaction
ERROR_LIMIT = 200


@dataclass(frozen=True)
class ConversationChange:
    """The new memory item and the session and message items an event changed."""

    memory: Item
    sessions: list[Item] = field(default_factory=list)
    messages: list[Item] = field(default_factory=list)


def empty_memory(business_id: str, user_id: str) -> Item:
    """The memory of a customer before any event."""
    return {
        "businessId": business_id,
        "userId": user_id,
        "lastSeq": 0,
        "history": {"totalMessages": 0, "totalSessions": 0, "channels": [], "topicCounts": {}},
        "summary": "",
    }


def active_session(memory: Item) -> Item | None:
    """The session context if the customer has an active session, else None."""
    ctx = memory.get("sessionContext")
    return ctx if ctx and ctx.get("status") == "active" else None


# ---- items ----------------------------------------------------------------------------------


_iso = lru_cache(maxsize=64)(iso)


def _at(event: Event) -> str:
    """The event's time as items store it (memoised: it is needed several times per event)."""
    return _iso(event.occurredAt)


def _source(channel: str) -> str:
    return channel_specs.source(channel)


def due_shard(session_id: str) -> int:
    """The session's partition of the due index (stable: a hash of its id)."""
    return zlib.crc32(session_id.encode()) % DUE_SHARDS


def due_attributes(ctx: Item, config: FoldConfig) -> Item:
    """`dueShard` and `nextDueAt` (when the session's next timer is due: the earlier of its
    expiry, lastMessageAt + idle minutes, and its nudge's due time) while the session is active;
    nothing once it ended, so the due index holds active sessions only."""
    if ctx["status"] != "active":
        return {}
    due = _parse(ctx["lastMessageAt"]) + timedelta(minutes=config.idle_minutes)
    nudge = nudge_due_attributes(ctx, config)
    first = min(due, _parse(nudge["nudgeDue"]["at"])) if nudge else due
    return {"dueShard": due_shard(ctx["sessionId"]), "nextDueAt": _iso(first), "expiresAt": _iso(due), **nudge}


def nudge_due_attributes(ctx: Item, config: FoldConfig) -> Item:
    """`nudgeDue` {at, until, content, channel, deliverTo}: what the timer appends as the
    session's NudgeSent and from when (nothing when no nudge is due)."""
    window = nudges.due(ctx, config)
    if window is None:
        return {}
    said = [t["content"] for t in ctx.get("lastMessages", []) if t.get("role") == "user"]
    language = detect_language(said[-1], config.language) if said else config.language
    inbound = ctx.get("lastInbound") or {}
    channel = inbound.get("channel") or ctx.get("channel") or "websocket"
    content = nudges.text(config, language)
    plan = {"at": _iso(window.start), "until": _iso(window.until), "content": content, "channel": channel,
            "deliverTo": dict(inbound.get("replyTo") or {})}
    ends = templates.window_ends(channel, inbound.get("at"))
    template = templates.find(config.templates, "nudge", channel, language, config.language)
    if ends is not None:
        plan["windowUntil"] = _iso(ends)
        if template is not None:
            plan["template"] = templates.use(template, {"text": content})
    return {"nudgeDue": plan}


def session_item(ctx: Item, event: Event, config: FoldConfig) -> Item:
    """The ai-agent-sessions item of a session context, as changed by `event`."""
    return {
        "sessionId": ctx["sessionId"],
        "businessId": event.businessId,
        "locationId": ctx.get("locationId") or "default",
        "userId": event.userId,
        "status": ctx["status"],
        "createdAt": ctx["startedAt"],
        "updatedAt": _at(event),
        "lastMessageAt": ctx["lastMessageAt"],
        "metadata": {
            "businessType": config.business_type,
            "context": {"channel": ctx.get("channel") or event.channel, "messageCount": int(ctx["conversationLength"])},
        },
        "lastSeq": event.seq,
        **({"handoff": ctx["handoff"]} if ctx.get("handoff") else {}),
        **({"nudge": ctx["nudge"]} if ctx.get("nudge") else {}),
        **({"optedOut": True} if ctx.get("optedOut") else {}),
        **due_attributes(ctx, config),
    }


def message_item(event: Event, session_id: str, kind: str, content: str,
                 external_id: str | None = None, response_id: str | None = None, author: str | None = None) -> Item:
    """The ai-agent-messages item of one message (its id is the event's id); an agent message's
    `metadata.author` is "ai" (a reply or notice) or "human" (a person of the business)."""
    metadata: Item = {"source": _source(event.channel), "channel": event.channel}
    if external_id:
        metadata["externalId"] = external_id
    if response_id:
        metadata["responseId"] = response_id
    if author:
        metadata["author"] = author
    return {
        "messageId": event.eventId,
        "sessionId": session_id or NO_SESSION,
        "businessId": event.businessId,
        "userId": event.userId,
        "content": content,
        "type": kind,
        "timestamp": _at(event),
        "metadata": metadata,
        "seq": event.seq,
    }


# ---- state changes (on a private copy) ------------------------------------------------------


def _copy(memory: Item) -> Item:
    """A copy deep enough for the changes below (they replace lists, never mutate them)."""
    state = dict(memory)
    history = dict(memory.get("history") or {})
    history["topicCounts"] = dict(history.get("topicCounts") or {})
    history.setdefault("channels", [])
    history.setdefault("totalMessages", 0)
    history.setdefault("totalSessions", 0)
    state["history"] = history
    if memory.get("sessionContext"):
        state["sessionContext"] = dict(memory["sessionContext"])
    return state


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _idle(ctx: Item, at: datetime, idle_minutes: int) -> bool:
    """More than `idle_minutes` passed between the session's last message and `at`."""
    return at - _parse(ctx["lastMessageAt"]) > timedelta(minutes=idle_minutes)


def _open_session(memory: Item, event: Event) -> Item:
    at = _at(event)
    ctx = {
        "sessionId": derive_id("session", event.streamId, str(event.seq)),
        "status": "active",
        "startedAt": at,
        "lastMessageAt": at,
        "locationId": event.locationId or "default",
        "channel": event.channel,
        "conversationLength": 0,
        "recentTopics": [],
        "lastMessages": _carried(memory, event),
        **({"optedOut": True} if opted_out(memory) else {}),
    }
    memory["sessionContext"] = ctx
    memory["history"]["totalSessions"] += 1
    return ctx


def _carried(memory: Item, event: Event) -> list[Item]:
    """The business's messages sent while no session was live (not older than CARRY_DAYS), taken
    out of the memory: the new session's first turns, so the model reads what the customer answers."""
    since = event.occurredAt - timedelta(days=CARRY_DAYS)
    return [t for t in memory.pop("carried", []) if _parse(t["timestamp"]) >= since]


def _turn(event: Event, role: str, content: str) -> Item:
    return {"role": role, "content": content[:CONTENT_LIMIT], "timestamp": _at(event), "eventId": event.eventId}


def _record_turn(ctx: Item, event: Event, role: str, content: str) -> None:
    turn = _turn(event, role, content)
    ctx["lastMessageAt"] = max(ctx["lastMessageAt"], turn["timestamp"])  # same format: string order is time order
    ctx["conversationLength"] = int(ctx["conversationLength"]) + 1
    ctx["lastMessage"] = {"content": turn["content"], "type": role, "timestamp": turn["timestamp"]}
    ctx["lastMessages"] = [*ctx.get("lastMessages", []), turn][-LAST_MESSAGES:]


def _record_topics(ctx: Item, history: Item, topics: list[str]) -> None:
    recent = [t for t in ctx.get("recentTopics", []) if t not in topics] + topics
    ctx["recentTopics"] = recent[-RECENT_TOPICS:]
    counts = history["topicCounts"]
    for topic in topics:
        counts[topic] = int(counts.get(topic, 0)) + 1
    if len(counts) > TOPIC_COUNTS:
        history["topicCounts"] = dict(_ranked(counts)[:TOPIC_COUNTS])


def _ranked(counts: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted(((k, int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))


def _record_customer(history: Item, event: Event) -> None:
    """When and where the customer was seen (user messages only)."""
    at = _at(event)
    history["firstSeenAt"] = min(history.get("firstSeenAt", at), at)
    history["lastSeenAt"] = max(history.get("lastSeenAt", at), at)
    if event.channel not in history["channels"]:
        history["channels"] = sorted([*history["channels"], event.channel])


def summary(history: Item) -> str:
    """A short deterministic description of the customer, from the history (≤ 300 chars)."""
    parts = []
    if history.get("firstSeenAt"):
        parts.append(f"Customer since {history['firstSeenAt'][:10]}")
    parts.append(f"{history.get('totalMessages', 0)} messages in {history.get('totalSessions', 0)} sessions")
    if history.get("channels"):
        parts.append("channels: " + ", ".join(history["channels"]))
    top = _ranked(history.get("topicCounts") or {})[:SUMMARY_TOPICS]
    if top:
        parts.append("topics: " + ", ".join(t for t, _ in top))
    return "; ".join(parts)[:SUMMARY_LIMIT]


# ---- events ---------------------------------------------------------------------------------


def _on_message(memory: Item, event: MessageReceived, config: FoldConfig) -> ConversationChange:
    sessions: list[Item] = []
    ctx = active_session(memory)
    if ctx is not None and _idle(ctx, event.occurredAt, config.idle_minutes):
        ctx["status"] = "abandoned"
        sessions.append(session_item(ctx, event, config))
        ctx = None
    if ctx is None:
        ctx = _open_session(memory, event)
    _drop_lapsed_handoff(ctx, event, config)
    ctx["lastInbound"] = {"eventId": event.eventId, "channel": event.channel, "at": _at(event),
                          "replyTo": dict(event.payload.replyTo)}
    content = event.payload.content
    history = memory["history"]
    _record_turn(ctx, event, "user", content)
    _record_topics(ctx, history, extract_topics(content))
    _record_customer(history, event)
    history["totalMessages"] = int(history["totalMessages"]) + 1
    memory["summary"] = summary(history)
    sessions.append(session_item(ctx, event, config))
    message = message_item(event, ctx["sessionId"], "user", content, event.payload.externalId)
    message["metadata"].update(_kind_metadata(event))
    if event.payload.kind in MEDIA_KINDS:  # what a transcript needs to rewrite the message item
        ctx["lastMessages"] = [*ctx["lastMessages"][:-1], {**ctx["lastMessages"][-1], "item": message}]
    return ConversationChange(memory, sessions, [message])


def _on_media(memory: Item, event: MediaStored | MediaRefused | MediaTranscribed) -> ConversationChange:
    """What became of a file rewrites its message item (its `updatedSeq` the event's seq): a
    voice note's transcript becomes the message's text (in the last turns and the topics too); a
    kept file is listed in `metadata.media` (what the inbox shows), a refused one with its reason."""
    ctx = active_session(memory)
    source = event.payload.sourceEventId
    turns = list((ctx or {}).get("lastMessages", []))
    at = next((i for i, t in enumerate(turns) if t.get("eventId") == source and t.get("item")), None)
    if ctx is None or at is None:
        return ConversationChange(memory)
    turn = turns[at]
    item = {**turn["item"], "updatedSeq": event.seq, "metadata": dict(turn["item"]["metadata"])}
    p = event.payload
    if isinstance(event, MediaTranscribed):
        said = "\n".join(part for part in (turn["content"], event.payload.text) if part.strip())[:CONTENT_LIMIT]
        item["content"] = turn["content"] = said
        item["metadata"]["transcript"] = event.payload.text[:CONTENT_LIMIT]
        if ctx.get("lastMessage", {}).get("timestamp") == turn["timestamp"] and ctx["lastMessage"].get("type") == "user":
            ctx["lastMessage"] = {**ctx["lastMessage"], "content": said}
        _record_topics(ctx, memory["history"], extract_topics(event.payload.text))
    else:
        entry = ({"index": p.index, "kind": p.kind, "contentType": p.contentType, "size": p.size, "key": p.key}
                 if isinstance(event, MediaStored) else {"index": p.index, "kind": p.kind, "refused": p.reason})
        item["metadata"]["media"] = [*item["metadata"].get("media", []), entry]
    turns[at] = {**turn, "content": item["content"], "item": item}
    ctx["lastMessages"] = turns
    return ConversationChange(memory, [], [item])


def _kind_metadata(event: MessageReceived) -> Item:
    """`kind` and `payloadId` of a message that is not plain text (nothing for text)."""
    p = event.payload
    return {} if p.kind == "text" else {"kind": p.kind, **({"payloadId": p.payloadId} if p.payloadId else {})}


def reaction_text(emoji: str) -> str:
    """A reaction as a message item reads ("👍 (reaction)")."""
    return f"{emoji} (reaction)" if emoji else "(reaction removed)"


def _on_reaction(memory: Item, event: MessageReceived) -> ConversationChange:
    """A reaction: a message item of the customer's latest session (whatever its status), with
    what it reacts to; the session's liveness, turns and window do not change."""
    ctx = memory.get("sessionContext")
    message = message_item(event, ctx["sessionId"] if ctx else NO_SESSION, "user",
                           reaction_text(event.payload.content), event.payload.externalId)
    meta = message["metadata"]
    meta.update({"kind": "reaction", "emoji": event.payload.content})
    target = event.payload.reactsTo
    if target:
        meta["reactsTo"] = target
        said = [t["content"] for t in (ctx or {}).get("lastMessages", []) if t.get("eventId") == target]
        if said:
            meta["reactsToText"] = said[-1][:EXCERPT]
    return ConversationChange(memory, [], [message])


def reply_status(memory: Item, event_id: str) -> Item | None:
    """What became of the message `event_id` we sent ({status, at, error?}), if reported."""
    return (memory.get("replyStatus") or {}).get(event_id)


def _on_status(memory: Item, event: ReplyStatusReported | DeliveryFailed) -> ConversationChange:
    """Keep the furthest status of the message: a vendor's failed > read > delivered > our own
    DeliveryFailed (a vendor that reports the message delivered knows better than our give-up)."""
    if isinstance(event, ReplyStatusReported):
        p = event.payload
        status, at, error, by = p.status, p.at, p.error, "vendor"
    else:
        status, at, error, by = "failed", _at(event), event.payload.error, "delivery"
    statuses = dict(memory.get("replyStatus") or {})
    known = statuses.get(event.payload.replyEventId)
    if known is not None and _rank(known) >= _rank({"status": status, "by": by}):
        return ConversationChange(memory)
    statuses[event.payload.replyEventId] = {"status": status, "at": at, "seq": event.seq, "by": by,
                                            **({"error": error[:ERROR_LIMIT]} if error and status == "failed" else {})}
    if len(statuses) > MAX_STATUSES:
        statuses = dict(sorted(statuses.items(), key=lambda kv: int(kv[1]["seq"]))[-MAX_STATUSES:])
    memory["replyStatus"] = statuses
    return ConversationChange(memory)


def _rank(entry: Item) -> int:
    return 0 if entry.get("by") == "delivery" else STATUS_RANK[entry["status"]]


def _on_reply(memory: Item, event: ReplyGenerated, config: FoldConfig) -> ConversationChange:
    ctx = active_session(memory)
    session_id = event.payload.sessionId or (ctx["sessionId"] if ctx else NO_SESSION)
    message = message_item(event, session_id, "agent", event.payload.content, response_id=event.payload.inReplyTo,
                           author="ai")
    history = memory["history"]
    history["totalMessages"] = int(history["totalMessages"]) + 1
    memory["summary"] = summary(history)
    if ctx is None or ctx["sessionId"] != session_id:
        return ConversationChange(memory, [], [message])
    _record_turn(ctx, event, "agent", event.payload.content)
    return ConversationChange(memory, [session_item(ctx, event, config)], [message])


def _on_session_end(memory: Item, event: SessionEnd, config: FoldConfig) -> ConversationChange:
    ctx = active_session(memory)
    if ctx is None or ctx["sessionId"] != event.payload.sessionId:
        return ConversationChange(memory)
    if isinstance(event, SessionExpired) and not _idle(ctx, event.occurredAt + timedelta(seconds=1), config.idle_minutes):
        return ConversationChange(memory)  # stale: the customer wrote again after the expiry was decided
    ctx["status"] = END_STATUS[type(event)]
    ctx.pop("handoff", None)  # resolve, expiry and close hand the conversation back
    return ConversationChange(memory, [session_item(ctx, event, config)])


# ---- handoff to a person ---------------------------------------------------------------------


def _drop_lapsed_handoff(ctx: Item, event: Event, config: FoldConfig) -> None:
    """Forget a handoff whose person has been silent past the timeout at this event's time."""
    if ctx.get("handoff") and handoff_of(ctx, event.occurredAt, config.handoff_timeout_minutes) is None:
        del ctx["handoff"]


def _session_of(memory: Item, session_id: str) -> Item | None:
    ctx = active_session(memory)
    return ctx if ctx is not None and ctx["sessionId"] == session_id else None


def _on_handoff(memory: Item, event: HandoffRequested, config: FoldConfig) -> ConversationChange:
    ctx = _session_of(memory, event.payload.sessionId)
    if ctx is None:
        return ConversationChange(memory)  # the session ended first: nothing to hand over
    _drop_lapsed_handoff(ctx, event, config)
    if ctx.get("handoff"):
        return ConversationChange(memory)  # already with a person: the first request stands
    at = _at(event)
    ctx["handoff"] = {"by": event.payload.by, "reason": event.payload.reason, "since": at, "seq": event.seq,
                      "eventId": event.eventId, "lastActivityAt": at, "ownerReplied": False}
    return ConversationChange(memory, [session_item(ctx, event, config)])


def _on_release(memory: Item, event: HandoffReleased, config: FoldConfig) -> ConversationChange:
    ctx = _session_of(memory, event.payload.sessionId)
    if ctx is None or not ctx.get("handoff"):
        return ConversationChange(memory)
    del ctx["handoff"]
    return ConversationChange(memory, [session_item(ctx, event, config)])


def _on_outbound(memory: Item, event: OwnerReplied | HandoffNoticeSent, config: FoldConfig) -> ConversationChange:
    """A person's message (author "human") or the handoff notice (author "ai") to the customer."""
    human = isinstance(event, OwnerReplied)
    session_id = event.payload.sessionId or NO_SESSION
    message = message_item(event, session_id, "agent", event.payload.content, author="human" if human else "ai")
    if human:
        message["metadata"]["authorName"] = event.payload.author
    history = memory["history"]
    history["totalMessages"] = int(history["totalMessages"]) + 1
    memory["summary"] = summary(history)
    ctx = _session_of(memory, session_id)
    if ctx is None:
        return ConversationChange(memory, [], [message])
    _record_turn(ctx, event, "agent", event.payload.content)
    if human and handoff_of(ctx, event.occurredAt, config.handoff_timeout_minutes) is not None:
        ctx["handoff"] = {**ctx["handoff"], "ownerReplied": True, "lastActivityAt": _at(event)}
    return ConversationChange(memory, [session_item(ctx, event, config)], [message])


def _on_nudge(memory: Item, event: NudgeSent, config: FoldConfig) -> ConversationChange:
    """The timer's nudge: it stands (a message to the customer, recorded on the session) only if
    the session may get one at the event's time; otherwise the session records it as refused
    (no message: it is never delivered) and no nudge is due again."""
    ctx = _session_of(memory, event.payload.sessionId)
    if ctx is None or ctx.get("nudge"):
        return ConversationChange(memory)  # ended first, or nudged already: nothing changes
    with_person = handoff_of(ctx, event.occurredAt, config.handoff_timeout_minutes) is not None
    reason = "opted out" if ctx.get("optedOut") else nudges.refusal(ctx, event.occurredAt, config, with_person)
    ctx["nudge"] = {"eventId": event.eventId, "at": _at(event), "status": "refused" if reason else "sent",
                    **({"reason": reason} if reason else {})}
    if reason:
        return ConversationChange(memory, [session_item(ctx, event, config)])
    message = message_item(event, ctx["sessionId"], "agent", event.payload.content, author="ai")
    message["metadata"]["kind"] = "nudge"
    history = memory["history"]
    history["totalMessages"] = int(history["totalMessages"]) + 1
    memory["summary"] = summary(history)
    _record_turn(ctx, event, "agent", event.payload.content)
    return ConversationChange(memory, [session_item(ctx, event, config)], [message])


def _on_opt(memory: Item, event: CustomerOptedOut | CustomerOptedIn, config: FoldConfig) -> ConversationChange:
    """The customer said stop (or start): remembered across sessions; the active session shows it
    to the owner and, opted out, has no nudge due."""
    out = isinstance(event, CustomerOptedOut)
    memory["optOut"] = {"out": out, "at": _at(event), "eventId": event.eventId, "keyword": event.payload.keyword}
    ctx = active_session(memory)
    if ctx is None:
        return ConversationChange(memory)
    if out:
        ctx["optedOut"] = True
    else:
        ctx.pop("optedOut", None)
    return ConversationChange(memory, [session_item(ctx, event, config)])


BusinessMessage = AppointmentProposed | AppointmentConfirmed | AppointmentDeclined | AppointmentCancelled
BUSINESS_MESSAGES = (AppointmentProposed, AppointmentConfirmed, AppointmentDeclined, AppointmentCancelled)


def _on_appointment(memory: Item, event: BusinessMessage, config: FoldConfig) -> ConversationChange:
    """What the business tells the customer about an appointment (a proposal, a confirmation, a
    decline, a cancellation), author "human" when the owner acted, "ai" when it answers the
    customer's own yes or cancel; nothing when the event carries no message."""
    content = event.payload.content
    if not content.strip():
        return ConversationChange(memory)
    author = "human" if event.payload.by == "owner" else "ai"
    return _business_message(memory, event, content, author, "appointment", config)


def _business_message(memory: Item, event: BusinessMessage | ReminderSent, content: str, author: str, kind: str,
                      config: FoldConfig) -> ConversationChange:
    """A message the business sent on its own: a message of the customer's last session, and a
    turn of that session while it is live; otherwise carried into the next session's turns."""
    last = memory.get("sessionContext")
    message = message_item(event, last["sessionId"] if last else NO_SESSION, "agent", content, author=author)
    message["metadata"].update({"kind": kind, "appointmentId": event.payload.appointmentId})
    history = memory["history"]
    history["totalMessages"] = int(history["totalMessages"]) + 1
    memory["summary"] = summary(history)
    ctx = active_session(memory)
    if ctx is None or _idle(ctx, event.occurredAt, config.idle_minutes):
        memory["carried"] = [*memory.get("carried", []), _turn(event, "agent", content)][-CARRIED:]
        return ConversationChange(memory, [], [message])
    _record_turn(ctx, event, "agent", content)
    return ConversationChange(memory, [session_item(ctx, event, config)], [message])


def _booked(memory: Item, event: Event) -> None:
    """The customer's confirmed appointments not yet started (id -> {startsAt, confirmedAt}, ISO
    UTC), kept so the fold can tell whether a reminder of one stands, as the reminders fold does."""
    payload: Any = event.payload
    booked = {k: v for k, v in (memory.get("booked") or {}).items()
              if k != payload.appointmentId and _parse(v["startsAt"]) > event.occurredAt}
    if isinstance(event, AppointmentConfirmed):
        booked[payload.appointmentId] = {"startsAt": reminders.starts_iso(payload.at), "confirmedAt": _at(event)}
    kept = dict(sorted(booked.items(), key=lambda kv: kv[1]["startsAt"])[:MAX_BOOKED])
    if kept:
        memory["booked"] = kept
    else:
        memory.pop("booked", None)


def _on_reminder(memory: Item, event: ReminderSent, config: FoldConfig) -> ConversationChange:
    """A reminder before an appointment: a message to the customer (kind "reminder", by the AI)
    when it stands (its appointment still confirmed at that start, the customer not opted out,
    sent before the start), and a turn of the customer's session, as the business's messages
    about appointments are."""
    booked = (memory.get("booked") or {}).get(event.payload.appointmentId)
    if not reminders.may_stand(booked, opted_out(memory), event, config):
        return ConversationChange(memory)  # the reminders fold refused it: never delivered
    return _business_message(memory, event, event.payload.content, "ai", "reminder", config)


def nudge_stands(puts: Iterable[Put]) -> bool:
    """Whether the conversation fold accepted a NudgeSent (it wrote the nudge as a message)."""
    return any(p.table == "messages" for p in puts)


def handed_off(memory: Item, event: Event, config: FoldConfig) -> bool:
    """Whether the customer's conversation is with a person at `event` (folded into `memory`):
    then its inbound gets no AI reply (a handed-off inbound is covered by the handoff)."""
    ctx = active_session(memory)
    return handoff_of(ctx, event.occurredAt, config.handoff_timeout_minutes) is not None


def apply(memory: Item, event: Event, config: FoldConfig) -> ConversationChange:
    """Apply one event of this conversation; `seq <= lastSeq` is a duplicate and changes nothing."""
    if (event.businessId, event.userId) != (memory["businessId"], memory["userId"]):
        raise ValueError(f"event {event.eventId} is not of {memory['businessId']}#{memory['userId']}")
    if event.seq <= int(memory["lastSeq"]):
        return ConversationChange(memory)
    state = _copy(memory)
    state["lastSeq"] = event.seq
    state["updatedAt"] = _at(event)
    if isinstance(event, MessageReceived):
        return _on_reaction(state, event) if is_reaction(event) else _on_message(state, event, config)
    if isinstance(event, (ReplyStatusReported, DeliveryFailed)):
        return _on_status(state, event)
    if isinstance(event, ReplyGenerated):
        return _on_reply(state, event, config)
    if isinstance(event, (SessionExpired, SessionResolved, SessionClosed)):
        return _on_session_end(state, event, config)
    if isinstance(event, HandoffRequested):
        return _on_handoff(state, event, config)
    if isinstance(event, HandoffReleased):
        return _on_release(state, event, config)
    if isinstance(event, (OwnerReplied, HandoffNoticeSent)):
        return _on_outbound(state, event, config)
    if isinstance(event, NudgeSent):
        return _on_nudge(state, event, config)
    if isinstance(event, (MediaStored, MediaRefused, MediaTranscribed)):
        return _on_media(state, event)
    if isinstance(event, (CustomerOptedOut, CustomerOptedIn)):
        return _on_opt(state, event, config)
    if isinstance(event, (*BUSINESS_MESSAGES, AppointmentNoShow)):
        _booked(state, event)
    if isinstance(event, BUSINESS_MESSAGES):
        return _on_appointment(state, event, config)
    if isinstance(event, ReminderSent):
        return _on_reminder(state, event, config)
    return ConversationChange(state)  # ReplyDelivered: only lastSeq moves


def fold(events: Iterable[Event], config: FoldConfig, business_id: str, user_id: str
         ) -> tuple[Item, dict[str, Item], dict[str, Item]]:
    """A conversation's events folded in seq order (duplicates skipped): the final memory, and
    the final session and message items keyed by sessionId and messageId (last write wins)."""
    memory = empty_memory(business_id, user_id)
    sessions: dict[str, Item] = {}
    messages: dict[str, Item] = {}
    for event in sorted(events, key=lambda e: e.seq):
        projection = apply(memory, event, config)
        memory = projection.memory
        sessions.update((s["sessionId"], s) for s in projection.sessions)
        messages.update((m["messageId"], m) for m in projection.messages)
    return memory, sessions, messages


class ConversationProjection:
    """Sessions, messages and the customer's memory (`rag-dynamic-user`, the state item)."""

    name = "conversation"
    table = "rag_user"
    owns = {"rag_user": ("businessId", "userId"), "sessions": ("sessionId",), "messages": ("messageId", "sessionId")}
    version = 9  # v9: the business's messages sent while no session was live (memory's carried) open the next session's turns; v8: no nudge due on the business's closedDays, reminders as messages (metadata.kind "reminder", memory's booked); v7: the business's messages about appointments (metadata.kind "appointment"); v6: what became of customers' files (transcripts as their messages' text, metadata.media) and opt-outs (optOut, optedOut), a nudge's template past the window (nudgeDue.windowUntil, template); v2: handoff state, the last inbound's addressing, messages' metadata.author, active sessions' dueShard and nextDueAt; v3: nudges (nudge, nudgeDue, expiresAt); v4: message kinds, reactions, replyStatus, Instagram's messaging window for nudges

    def empty(self, business_id: str, user_id: str) -> Item:
        return {**empty_memory(business_id, user_id), "version": self.version}

    def apply(self, state: Item, event: Event, config: FoldConfig) -> tuple[Item, list[Put]]:
        p = apply(state, event, config)
        return p.memory, [*(Put("sessions", s) for s in p.sessions),
                          *(Put("messages", m, "updatedSeq" if "updatedSeq" in m else "seq") for m in p.messages)]


CONVERSATION = ConversationProjection()
