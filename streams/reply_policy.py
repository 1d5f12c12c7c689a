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
from agentstream.events import Event, HandoffRequested, MessageReceived, derive_id, iso, new_event, reply_event_id
from agentstream.projections import optout, templates
from agentstream.projections.base import FoldConfig, Item, Put
from agentstream.projections.booking_prompt import APPOINTMENTS, CLOSED_DAYS, appointments_at, closed_days_ahead
from agentstream.projections.booking_rules import closed_days_of
from agentstream.projections.context import ReplyContext
from agentstream.projections.conversation import active_session, nudge_stands
from agentstream.projections.facts import current_facts
from agentstream.projections.reminders import remind_before
from agentstream.projections.handoff import BUDGET_REASON, notice, wants_human
from agentstream.projections.media_notes import MediaOutcome, canned_media_reply, file_states, image_keys, message_text
from agentstream.projections.timecontext import time_context
from agentstream.projections.topics import detect_language
from agentstream.projections.spend import BUDGET_MODEL
from agentstream.streams.bursts import burst_text

HANDOFF_MODEL = "handoff"  # the model of the reply that tells a customer who asked for a person that one will answer
MEDIA_NOTICE_MODEL = "media-notice"  # the model of the reply that asks a customer to write instead of sending a file
OPT_MODEL = "opt-out"  # the model of the reply confirming a customer's stop or start
REPLIES_FOLLOW = "conversation"  # an inbound is answered when this projection applies it
States = dict[str, Item]


def fold_config(info: dict[str, Any], default_idle_minutes: int) -> FoldConfig:
    """The business settings the folds read."""
    return FoldConfig(idle_minutes(info, default_idle_minutes), str(info.get("businessType", "general")),
                      str(info.get("timezone", "UTC")), info.get("openingHours") or {},
                      handoff_timeout_minutes=handoff_timeout_minutes(info), **nudge_config(info, default_idle_minutes),
                      remind_before_minutes=remind_before(info), closed_days=closed_days_of(info))


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
    (or whose business's model budget is spent) that one will answer, or it is the fallback of a
    model that could not answer."""
    return getattr(reply.payload, "model", "") in (HANDOFF_MODEL, BUDGET_MODEL) or bool(getattr(reply.payload, "fallback", False))


def canned_answer(ctx: ReplyContext) -> Answer | None:
    """The answer given without the model: to a customer who said stop (or start), that they will
    get no more reminders (or will again); to a file agentstream cannot read or did not accept,
    sent alone, to write instead; to a customer asking for a person, that one will."""
    opt = optout.change(ctx.message)
    if opt is not None:
        return Answer(optout.confirmation(opt[0], ctx.language), OPT_MODEL, 0)
    if ctx.extra.get("canned"):
        return Answer(str(ctx.extra["canned"]), MEDIA_NOTICE_MODEL, 0)
    return Answer(notice(ctx.language, "customer"), HANDOFF_MODEL, 0) if wants_human(ctx.message) else None


def reply_context(inbound: MessageReceived, states: States, info: dict[str, Any], instructions: str,
                  rag: list[dict[str, Any]], media: MediaOutcome | None = None, images_as_input: bool = False,
                  burst: Sequence[MessageReceived] = ()) -> ReplyContext:
    """The context of the reply to `inbound`, from the projections' states just after it and, for
    a message with files, the media events logged before the reply (pure: `explain` rebuilds it
    from the log). With `burst` (its messages, `inbound` the last), the customer's latest turn is
    the whole burst."""
    text = burst_text(burst) if len(burst) > 1 else inbound.payload.content
    facts = states.get("facts")
    language = detect_language(text) if text.strip() else str(info.get("language", "en"))
    extra: dict[str, Any] = {}
    if media is not None or inbound.payload.attachments:
        outcome = media or MediaOutcome()
        said = " ".join(t.payload.text for t in outcome.transcripts)
        language = detect_language(said) if said.strip() and not text.strip() else language
        text = message_text(inbound, outcome, images_as_input) or text
        extra = {"media": [e.payload.model_dump() for e in (*outcome.stored, *outcome.refused, *outcome.failed,
                                                             *outcome.transcripts)],
                 "files": file_states(inbound, outcome), "said": " ".join(p for p in (inbound.payload.content, said) if p.strip())}
        if images_as_input and image_keys(inbound, outcome):
            extra["images"] = image_keys(inbound, outcome)
        if canned := canned_media_reply(inbound, outcome, language):
            extra["canned"] = canned
    return ReplyContext(
        business=info,
        system_instructions=instructions,
        rag_entries=rag,
        memory=states[REPLIES_FOLLOW],
        time=time_context(inbound.occurredAt, str(info.get("timezone", "UTC")), info.get("openingHours") or {},
                          closed_days_of(info)),
        message=text,
        language=language,
        inbound_event_id=inbound.eventId,
        facts=current_facts(facts, inbound.occurredAt) if facts else [],
        extra={**extra, APPOINTMENTS: appointments_at(states.get("appointments"), inbound.occurredAt),
               CLOSED_DAYS: closed_days_ahead(info, inbound.occurredAt, str(info.get("timezone", "UTC")))},
        burst_event_ids=tuple(m.eventId for m in burst if m.eventId != inbound.eventId),
    )


def prompt_hash(prompt: list[dict[str, str]]) -> str:
    """The SHA-256 of a prompt's messages (what ReplyGenerated records and `explain` checks)."""
    return hashlib.sha256(orjson.dumps(prompt)).hexdigest()


def reply_draft(inbound: MessageReceived, states: States, answer: Answer, prompt: list[dict[str, str]],
                versions: dict[str, str], at: datetime, burst: Sequence[MessageReceived] = (),
                media_read_to: int | None = None, images: Sequence[str] = ()) -> Event:
    """The reply to `inbound` (or to the `burst` it is the last of) as an event, not yet in the
    log: the answer, where it goes, what it covers (its id is the first inbound's) and what it
    was made from (the prompt's hash, the business data's versions, the media events logged up
    to `media_read_to`: none read, the last inbound's seq; the photos given as `images`)."""
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
            "mediaUpToSeq": covered[-1].seq if media_read_to is None else media_read_to,
            "imagesGiven": list(images),
            "send": {"window": templates.window_state(inbound.channel, iso(inbound.occurredAt), at)},
        },
    )


def handoff_request(inbound: MessageReceived, reply: Event, at: datetime) -> tuple[Event, str]:
    """The HandoffRequested a reply that `hands_off` sets off, and its idempotency key: the
    customer asked for a person, or the model could not answer (its fallback promises one)."""
    payload = reply.payload
    by, reason = {HANDOFF_MODEL: ("customer", inbound.payload.content[:200]),
                  BUDGET_MODEL: ("system", BUDGET_REASON)}.get(payload.model, ("responder", "fallback"))
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
                 "deliverTo": dict(last.get("replyTo") or {}), "send": _notice_send(last, at)},
    )
    return draft, keys.handoff_timeout_notice(handoff.eventId)


def _notice_send(last: Item, at: datetime) -> dict[str, Any]:
    """The handoff notice is free text: inside the window, or on Messenger and Instagram with the
    human-agent tag (a person takes the conversation); elsewhere it is recorded as closed and not sent."""
    channel = last.get("channel") or "system"
    state = templates.window_state(channel, last.get("at"), at) if channel != "system" else "none"
    if state == "closed" and templates.tag_allowed(channel, last.get("at"), at):
        return {"window": state, "tag": templates.HUMAN_AGENT}
    return {"window": state}
