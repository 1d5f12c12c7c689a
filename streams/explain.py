"""Why this reply: the exact context a reply was built from, rebuilt from the log.

Given the eventId of a ReplyGenerated or of its inbound message, the customer's stream is
folded up to the inbound (every registered projection, as the worker had them when it asked
the model), the business info, system instructions and RAG entries in force at the inbound's
time are read from the config history, and the prompt is built again. `reproduced` says whether
its hash is the one the reply recorded; if not, the differences say what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agentstream.adapters.dynamo.config_history import info_key, instructions_key, rag_key, version_of
from agentstream.events import Event, MessageReceived, ReplyGenerated, iso
from agentstream.projections.base import Projection, fold_events
from agentstream.projections.skips import without_skipped
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.kinds import needs_reply, no_reply_reason
from agentstream.projections.media_notes import MEDIA_TYPES, MediaOutcome, outcome_of, read_files
from agentstream.registry import PROJECTIONS
from agentstream.streams.bursts import covered_by, covers, first_seqs
from agentstream.streams.ports import EventLog, StoreConfig, VersionedDirectory
from agentstream.streams.booking_context import recorded_free_slots
from agentstream.streams.reply_policy import fold_config, prompt_hash, reply_context, reply_key


class NotExplainable(LookupError):
    """No such event in the log (or not of the caller's business), or not a message or reply."""


@dataclass
class Explanation:
    inbound: MessageReceived
    reply: ReplyGenerated | None
    context: ReplyContext
    prompt: list[dict[str, str]]
    prompt_hash: str
    versions: dict[str, str]  # the business data's versions in force at the inbound's time
    notes: list[str] = field(default_factory=list)
    covered: list[MessageReceived] = field(default_factory=list)  # the inbounds the reply covers (a burst: several)
    media_unplaced: list[str] = field(default_factory=list)  # media events a reply without a media position may not have seen

    @property
    def reproduced(self) -> bool:
        return self.reply is not None and self.reply.payload.promptHash == self.prompt_hash

    def differences(self) -> list[str]:
        """Why the rebuilt prompt is not the one sent ([] when it is)."""
        if self.reply is None:
            reason = no_reply_reason(self.inbound)
            return [f"the message is {reason}: it gets no reply" if reason else "the message has no reply in the log"]
        recorded = self.reply.payload
        if not recorded.promptHash:
            return ["the reply recorded no prompt hash (written before schemaVersion 2)"]
        if self.reproduced:
            return []
        unplaced = [f"the reply recorded no media position (before ReplyGenerated v4): the prompt is rebuilt with the "
                    f"media events logged before it ({', '.join(self.media_unplaced)}), and one may have landed after "
                    f"the reply stopped waiting for the files"] if self.media_unplaced else []
        changed = [f"{name}: the reply used version {recorded.versions.get(name) or 'unknown'}, "
                   f"the history has {self.versions.get(name) or 'none'} in force at {iso(self.inbound.occurredAt)}"
                   for name in ("businessInfo", "systemInstructions", "rag")
                   if recorded.versions.get(name) != self.versions.get(name)]
        return unplaced + changed or ["business data versions match: the fold or the prompt builder changed since (another build)"]

    def to_json(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "eventId": self.reply.eventId if self.reply else None,
            "inbound": {"eventId": self.inbound.eventId, "seq": self.inbound.seq, "occurredAt": iso(self.inbound.occurredAt),
                        "content": self.inbound.payload.content, "kind": self.inbound.payload.kind},
            "reply": None if self.reply is None else {"eventId": self.reply.eventId, "seq": self.reply.seq,
                                                     "content": self.reply.payload.content, "model": self.reply.payload.model,
                                                     "promptHash": self.reply.payload.promptHash,
                                                     "versions": self.reply.payload.versions},
            "covers": [{"eventId": m.eventId, "seq": m.seq, "content": m.payload.content,
                        "externalId": m.payload.externalId} for m in self.covered or [self.inbound]],
            "reproduced": self.reproduced,
            "promptHash": self.prompt_hash,
            "differences": self.differences(),
            "notes": self.notes,
            "prompt": self.prompt,
            "context": {
                "facts": ctx.facts,
                "time": asdict(ctx.time),
                "language": ctx.language,
                "businessInfo": ctx.business,
                "systemInstructions": ctx.system_instructions,
                "ragEntries": ctx.rag_entries,
                "memory": ctx.memory,
                "lastMessages": ctx.earlier_turns(),
                "media": ctx.extra.get("media", []),
                "imagesGiven": ctx.extra.get("images", []),
                "versions": self.versions,
            },
        }


class ExplainConfig(StoreConfig, Protocol):
    @property
    def prompt_budget_chars(self) -> int: ...


class Explainer:
    def __init__(self, store: EventLog, directory: VersionedDirectory, settings: ExplainConfig,
                 registry: Sequence[Projection] = PROJECTIONS) -> None:
        """`directory`: a fresh one reads (and records) the business data as it is now."""
        self._store = store
        self._directory = directory
        self._settings = settings
        self._registry = tuple(registry)

    async def explain(self, event_id: str, business_id: str | None = None) -> Explanation:
        """Explain the reply `event_id` is (or answers); `business_id` limits it to one business."""
        event = await self._store.by_id(event_id)
        if event is None or (business_id is not None and event.businessId != business_id):
            raise NotExplainable(f"no event {event_id!r} in the log")
        inbound, reply = await self._pair(event)
        burst = await self._covered(inbound, reply)
        events, media, logged = await self._as_folded(burst[-1], reply)
        notes: list[str] = late_media_notes(burst[-1], reply, logged)
        used = reply.payload.versions if reply else {}
        d, b = self._directory, inbound.businessId
        info, info_version = await self._used(info_key(b), used.get("businessInfo"), inbound.occurredAt, notes,
                                              lambda: d.info(b))
        info = info or {}
        business_type = str(info.get("businessType", "general"))
        instructions, instructions_version = await self._used(
            instructions_key(business_type), used.get("systemInstructions"), inbound.occurredAt, notes,
            lambda: d.system_instructions(business_type))
        rag, rag_version = await self._used(rag_key(b), used.get("rag"), inbound.occurredAt, notes, lambda: d.rag_entries(b))
        config = fold_config(info, self._settings.session_idle_minutes)
        states = {p.name: fold_events(p, events, config, inbound.businessId, inbound.userId)[0] for p in self._registry}
        images = images_as_input(burst[-1], reply, self._settings, notes)
        ctx = reply_context(burst[-1], states, info, instructions or "", rag or [], media, images, burst if len(burst) > 1 else ())
        ctx = await recorded_free_slots(self._store, ctx, burst[-1])
        prompt = build_prompt(ctx, self._settings.prompt_budget_chars)
        versions = {"businessInfo": info_version, "systemInstructions": instructions_version, "rag": rag_version}
        return Explanation(inbound, reply, ctx, prompt, prompt_hash(prompt), versions, notes, burst,
                           unplaced_media(burst[-1], reply, logged))

    async def _covered(self, inbound: MessageReceived, reply: ReplyGenerated | None) -> list[MessageReceived]:
        """The inbounds `reply` covers (its burst, from the log), `inbound` alone without a reply."""
        if reply is None or reply.payload.coversUpToSeq <= inbound.seq:
            return [inbound]
        return covered_by(reply, await self._store.read(reply.streamId, limit=reply.seq), needs_reply) or [inbound]

    async def _as_folded(self, inbound: MessageReceived, reply: ReplyGenerated | None
                         ) -> tuple[list[Event], MediaOutcome | None, list[Event]]:
        """The conversation up to the inbound without the events skipped when the reply was made
        (the skip records logged before the reply: a skip comes after the event it names), what
        the media process had logged about the inbound's files when the reply stopped waiting for
        them, and the log up to the reply."""
        logged = await self._store.read(inbound.streamId, limit=reply.seq if reply else inbound.seq)
        media = outcome_of(inbound, logged, media_before(reply)) if reply is not None and read_files(inbound) else None
        return [e for e in without_skipped(logged) if e.seq <= inbound.seq], media, logged

    async def _pair(self, event: Event) -> tuple[MessageReceived, ReplyGenerated | None]:
        """The inbound message and its reply, from either of them."""
        if isinstance(event, MessageReceived):
            reply = await self._store.find(event.businessId, reply_key(event.eventId))
            if isinstance(reply, ReplyGenerated):
                return event, reply
            later = await self._store.read(event.streamId, after_seq=event.seq)  # a later message's burst may cover it
            firsts = first_seqs([event, *later])
            burst_reply = next((e for e in later if isinstance(e, ReplyGenerated) and covers(e, event, firsts[e.eventId])), None)
            return (await self._pair(burst_reply)) if burst_reply else (event, None)
        if isinstance(event, ReplyGenerated):
            for earlier in await self._store.read(event.streamId, limit=event.seq):
                if earlier.eventId == event.payload.inReplyTo and isinstance(earlier, MessageReceived):
                    return earlier, event
            raise NotExplainable(f"the inbound {event.payload.inReplyTo!r} of reply {event.eventId!r} is not in the log")
        raise NotExplainable(f"event {event.eventId!r} is a {event.type}, not a message or a reply")

    async def _used(self, key: str, version: str | None, when: datetime, notes: list[str], current: Any) -> tuple[Any, str]:
        """The content the reply used: the recorded version from the history; else the one in
        force at `when`; else the current one (noted)."""
        if version:
            for _, content, found in await self._directory.history.versions(key):
                if found == version:
                    return content, found
            notes.append(f"{key}: version {version} is not in the config history")
        in_force = await self._directory.history.at(key, when)
        if in_force is not None:
            return in_force
        value = await current()
        notes.append(f"{key}: no version recorded by {iso(when)}; the current one is shown")
        return value, version_of(value) if value is not None else ""


def media_before(reply: ReplyGenerated) -> int:
    """The seq before which the media events the reply's prompt used were logged: past the
    position its wait had read (recorded since v4), else the reply's own."""
    return reply.payload.mediaUpToSeq + 1 if reply.payload.mediaUpToSeq else reply.seq


def _about(inbound: MessageReceived, logged: Sequence[Event]) -> list[Event]:
    return [e for e in logged if e.type in MEDIA_TYPES and getattr(e.payload, "sourceEventId", None) == inbound.eventId]


def late_media_notes(inbound: MessageReceived, reply: ReplyGenerated | None, logged: Sequence[Event]) -> list[str]:
    """What the media process logged about the inbound's files after the reply stopped waiting
    for them and before the reply: not in the prompt."""
    if reply is None or not reply.payload.mediaUpToSeq:
        return []
    return [f"{e.type} (seq {e.seq}) landed after the reply stopped waiting for the files (it had read up to seq "
            f"{reply.payload.mediaUpToSeq}): not in the prompt" for e in _about(inbound, logged) if e.seq >= media_before(reply)]


def unplaced_media(inbound: MessageReceived, reply: ReplyGenerated | None, logged: Sequence[Event]) -> list[str]:
    """The media events a reply that recorded no media position (before v4) may not have seen."""
    if reply is None or reply.payload.mediaUpToSeq:
        return []
    return [f"{e.type} seq {e.seq}" for e in _about(inbound, logged) if e.seq < reply.seq]


def images_as_input(inbound: MessageReceived, reply: ReplyGenerated | None, settings: Any, notes: list[str]) -> bool:
    """Whether the reply's prompt gave the model the kept photos as images: as the reply recorded
    (since v5; photos given only if it could), else today's MODEL_ACCEPTS_IMAGES (noted when the
    message has a photo)."""
    if reply is not None and reply.payload.imagesGiven is not None:
        return bool(reply.payload.imagesGiven)
    current = bool(getattr(getattr(settings, "media", None), "model_accepts_images", False))
    photos = [i for i in read_files(inbound) if getattr(inbound.payload.attachments[i], "kind", None) == "image"]
    if reply is not None and photos:
        notes.append(f"the reply recorded no photos given (before ReplyGenerated v5): the prompt is rebuilt as today's "
                     f"MODEL_ACCEPTS_IMAGES={'true' if current else 'false'} would give them")
    return current
