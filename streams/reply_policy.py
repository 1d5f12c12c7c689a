"""The reply policy, pure: what a reply is built from, its key, its prompt's hash, and the events
a reply sets off. The worker, explain, replay, shadow, forget and the legacy import share it, so
each rebuilds a reply exactly as the worker made it. No I/O here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from agentstream import idempotency as keys
from agentstream.adapters.dynamo.business import handoff_timeout_minutes, idle_minutes, nudge_config
from agentstream.adapters.llm import Answer
from agentstream.events import Event, HandoffRequested, MessageReceived, derive_id, new_event, reply_event_id
from agentstream.projections.base import FoldConfig, Item, Put
from agentstream.projections.context import ReplyContext
from agentstream.projections.conversation import active_session, nudge_stands
from agentstream.projections.facts import current_facts
from agentstream.projections.handoff import notice, wants_human
from agentstream.projections.timecontext import time_context
from agentstream.projections.topics import detect_language
from agentstream.streams.bursts import burst_text

HANDOFF_MODEL = "handoff"  # the model of the reply that tells a customer who asked for a person that one will answer
REPLIES_FOLLOW = "conversation"  # an inbound is answered when this projection applies it
States = dict[str, Item]


def fold_config(info: dict[str, Any], default_idle_minutes: int) -> FoldConfig:
    """The business settings the folds read."""
    return FoldConfig(idle_minutes(info, default_idle_minutes), str(info.get("businessType", "general")),
                      str(info.get("timezone", "UTC")), info.get("openingHours") or {},
                      handoff_timeout_minutes=handoff_timeout_minutes(info), **nudge_config(info, default_idle_minutes))


def reply_key(inbound_event_id: str) -> str:
    """The idempotency key of an inbound's one reply."""
    return keys.reply(inbound_event_id)


def published_when_folded(event: Event, puts: list[Put]) -> bool:
    """Whether a folded outbound event goes to agent.replies.v1: a NudgeSent only when the
    conversation fold let it stand (one the fold refused, e.g. appended after a handoff raced
    the timer, is never delivered); a person's message and the handoff notice always."""
    return event.type != "NudgeSent" or nudge_stands(puts)


def hands_off(reply: Event) -> bool:
    """Whether a reply hands its conversation to a person: it tells a customer who asked for one
    that one will answer, or it is the fallback of a model that could not answer."""
    return getattr(reply.payload, "model", "") == HANDOFF_MODEL or bool(getattr(reply.payload, "fallback", False))


def canned_answer(ctx: ReplyContext) -> Answer | None:
    """The answer given without the model: to a customer asking for a person, that one will."""
    return Answer(notice(ctx.language, "customer"), HANDOFF_MODEL, 0) if wants_human(ctx.message) else None


def reply_context(inbound: MessageReceived, states: States, info: dict[str, Any], instructions: str,
                  rag: list[dict[str, Any]], burst: Sequence[MessageReceived] = ()) -> ReplyContext:
    """The context of the reply to `inbound`, from the projections' states just after it (pure:
    `explain` rebuilds it from the log). With `burst` (its messages, `inbound` the last), the
    customer's latest turn is the whole burst."""
    text = burst_text(burst) if len(burst) > 1 else inbound.payload.content
    facts = states.get("facts")
    return ReplyContext(
        business=info,
        system_instructions=instructions,
        rag_entries=rag,
        memory=states[REPLIES_FOLLOW],
        time=time_context(inbound.occurredAt, str(info.get("timezone", "UTC")), info.get("openingHours") or {}),
        message=text,
        language=detect_language(text) if text.strip() else str(info.get("language", "en")),
        inbound_event_id=inbound.eventId,
        facts=current_facts(facts, inbound.occurredAt) if facts else [],
        burst_event_ids=tuple(m.eventId for m in burst if m.eventId != inbound.eventId),
    )


def prompt_hash(prompt: list[dict[str, str]]) -> str:
    """The SHA-256 of a prompt's messages (what ReplyGenerated records and `explain` checks)."""
    return hashlib.sha256(orjson.dumps(prompt)).hexdigest()


def reply_draft(inbound: MessageReceived, states: States, answer: Answer, prompt: list[dict[str, str]],
                versions: dict[str, str], at: datetime, burst: Sequence[MessageReceived] = ()) -> Event:
    """The reply to `inbound` (or to the `burst` it is the last of) as an event, not yet in the
    log: the answer, where it goes, what it covers (its id is the first inbound's) and what it
    was made from (the prompt's hash, the business data's versions)."""
    session = active_session(states[REPLIES_FOLLOW]) or {}
    covered = list(burst) or [inbound]
    first = covered[0]
    return new_event(
        "ReplyGenerated",
        occurred_at=at,
        event_id=reply_event_id(first.eventId),
        business_id=inbound.businessId,
        user_id=inbound.userId,
        location_id=inbound.locationId,
        channel=inbound.channel,
        payload={
            "content": answer.content,
            "inReplyTo": first.eventId,
            "coversUpToSeq": covered[-1].seq,
            "covers": [m.payload.externalId or m.eventId for m in covered],
            "sessionId": session.get("sessionId", ""),
            "model": answer.model,
            "latencyMs": answer.latency_ms,
            "usage": {"promptTokens": answer.prompt_tokens, "completionTokens": answer.completion_tokens},
            "fallback": answer.fallback,
            "deliverTo": dict(inbound.payload.replyTo),
            "promptHash": prompt_hash(prompt),
            "versions": versions,
        },
    )


def handoff_request(inbound: MessageReceived, reply: Event, at: datetime) -> tuple[Event, str]:
    """The HandoffRequested a reply that `hands_off` sets off, and its idempotency key: the
    customer asked for a person, or the model could not answer (its fallback promises one)."""
    payload = reply.payload
    by, reason = ("customer", inbound.payload.content[:200]) if payload.model == HANDOFF_MODEL else ("responder", "fallback")
    draft = new_event(
        "HandoffRequested", occurred_at=at, event_id=derive_id("handoff", inbound.eventId), business_id=inbound.businessId,
        user_id=inbound.userId, location_id=inbound.locationId, channel=inbound.channel,
        payload={"sessionId": payload.sessionId, "by": by, "reason": reason},
    )
    return draft, keys.handoff_notice(inbound.eventId)


def handoff_notice(handoff: HandoffRequested, states: States, at: datetime) -> tuple[Event, str]:
    """The HandoffNoticeSent that tells the customer, in their language, that a person will
    answer (through the channel of their last message), and its idempotency key."""
    ctx = active_session(states[REPLIES_FOLLOW]) or {}
    last = ctx.get("lastInbound") or {}
    said = [t["content"] for t in ctx.get("lastMessages", []) if t.get("role") == "user"]
    draft = new_event(
        "HandoffNoticeSent", occurred_at=at, event_id=derive_id("handoff-notice", handoff.eventId),
        business_id=handoff.businessId,
        user_id=handoff.userId, location_id=handoff.locationId, channel=last.get("channel") or "system",
        payload={"sessionId": handoff.payload.sessionId, "handoffEventId": handoff.eventId,
                 "content": notice(detect_language(said[-1]) if said else "en", "owner"),
                 "deliverTo": dict(last.get("replyTo") or {})},
    )
    return draft, keys.handoff_timeout_notice(handoff.eventId)
