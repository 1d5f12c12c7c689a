"""Applies one conversation's events in seq order: projections, then the reply (invariants 1, 3-5).

For each event: duplicates (seq <= lastSeq) are skipped, a gap is filled from the log, the
pure fold computes the new items, a MessageReceived gets its one reply, and the projected items
are written in one transaction. A reply that can go right after its inbound (the usual case) is
folded at once and appended in that same transaction, then published: its own arrival from the
topic is a duplicate that costs nothing. A worker killed between the transaction and the publish
leaves the inbound's record uncommitted; whoever meets it again finds the projections stopping
right after it and publishes the reply logged there (`_publish_again`). A reply that cannot go
right after its inbound is appended (where the log's head is) and published before the
projections are written. The log is searched for an inbound's reply only where another process
may have written one (see `_unanswered`). Every step is idempotent, so a crash anywhere is
repaired by processing the event again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import structlog

from agentstream import metrics
from agentstream.adapters.business import BusinessDirectory, handoff_timeout_minutes, idle_minutes, nudge_config
from agentstream.adapters.event_store import EventStore, event_from_item
from agentstream.adapters.llm import Answer, Responder
from agentstream.adapters.projection_store import AppendRaced, ProjectionStore, StaleWrite
from agentstream.events import (
    IMPORTED, OUTBOUND_TYPES, Event, HandoffRequested, MessageReceived, SkipRevoked, UnknownSchemaVersion, derive_id,
    new_event, reply_event_id, utc_now,
)
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.facts import current_facts
from agentstream.projections.base import FoldConfig, Item, Projection, Put, fold_events, key_of, position, state_version
from agentstream.projections.conversation import active_session, handed_off, nudge_stands
from agentstream.projections.handoff import OWNER_REPLIED, notice, wants_human
from agentstream.projections.timecontext import time_context
from agentstream.projections.kinds import needs_reply
from agentstream.projections.topics import detect_language
from agentstream.registry import PROJECTIONS
from agentstream.projections.skips import SKIP_TYPES, skipped_seqs, without_skipped
from agentstream.streams.dead_letters import EventFailed, refold

log = structlog.get_logger(__name__)


class PublishReply(Protocol):
    """Puts an outbound event on `agent.replies.v1`; `first`: a reply this call has just logged,
    so never published (nor delivered) before: delivery need not look for its record."""

    def __call__(self, reply: Event, first: bool = False) -> Awaitable[None]: ...


AfterReply = Callable[[MessageReceived, dict[str, Any]], Awaitable[None]]  # (inbound, business info)
OnHandoff = Callable[[Event], Awaitable[None]]  # tells the owner (topic agent.handoffs.v1, webhook); must not raise
HANDOFF_MODEL = "handoff"  # the model of the reply that tells a customer who asked for a person that one will answer
REPLY_LOOKAHEAD = 4  # events after an inbound read to find its reply (and the head) in one query
MAX_WRITES = 90  # puts in one transaction (DynamoDB takes 100, and a reply's append adds 2)
MAX_UNSENT = 256  # replies kept for the next try of an event whose one-transaction write failed
REPLIES_FOLLOW = "conversation"  # an inbound is answered when this projection applies it
States = dict[str, Item]


Snapshot = tuple[States, dict[tuple[str, tuple[Any, ...]], Put], list[str]]


@dataclass
class PendingReply:
    """A reply drafted at its inbound's seq + 1, appended in the projections' transaction; `before`
    is the batch as it was before the reply was folded, which a lost race goes back to."""

    reply: Event
    inbound: MessageReceived
    info: dict[str, Any]
    before: Snapshot


@dataclass
class Batch:
    """The effects of the events folded since the last write: one put per item (the last)."""

    writes: dict[tuple[str, tuple[Any, ...]], Put] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    answered: list[tuple[MessageReceived, dict[str, Any]]] = field(default_factory=list)  # new replies, for after_reply
    reply: PendingReply | None = None  # written with the puts, published once they are in

    def snapshot(self, states: States) -> Snapshot:
        return states, dict(self.writes), list(self.applied)

    def add(self, registry: Sequence[Projection], states: States, puts: dict[str, list[Put]], kind: str) -> None:
        for p in registry:
            if p.name in puts:
                for put in puts[p.name]:
                    self.writes[(put.table, key_of(p, put))] = put
                self.writes[(p.table, ())] = Put(p.table, states[p.name], version=p.version)
        self.applied.append(kind)

    def clear(self) -> None:
        self.writes.clear()
        self.applied.clear()
        self.reply = None


def fold_config(info: dict[str, Any], default_idle_minutes: int) -> FoldConfig:
    """The business settings the folds read."""
    return FoldConfig(idle_minutes(info, default_idle_minutes), str(info.get("businessType", "general")),
                      str(info.get("timezone", "UTC")), info.get("openingHours") or {},
                      handoff_timeout_minutes=handoff_timeout_minutes(info), **nudge_config(info, default_idle_minutes))


def published_when_folded(event: Event, puts: list[Put]) -> bool:
    """Whether a folded outbound event goes to agent.replies.v1: a NudgeSent only when the
    conversation fold let it stand (one the fold refused, e.g. appended after a handoff raced
    the timer, is never delivered); a person's message and the handoff notice always."""
    return event.type != "NudgeSent" or nudge_stands(puts)


def _current(projection: Projection, stored: Item | None, event: Event) -> Item:
    """A stored state, or the empty one when there is none or an older fold version wrote it."""
    if stored is None or state_version(stored) < projection.version:
        return projection.empty(event.businessId, event.userId)
    return stored


def hands_off(reply: Event) -> bool:
    """Whether a reply hands its conversation to a person: it tells a customer who asked for one
    that one will answer, or it is the fallback of a model that could not answer."""
    return getattr(reply.payload, "model", "") == HANDOFF_MODEL or bool(getattr(reply.payload, "fallback", False))


def applied_up_to(states: States) -> int:
    """The seq every projection of a conversation has applied (the lowest position)."""
    return min(position(s) for s in states.values())


def reply_key(inbound_event_id: str) -> str:
    return f"reply:{inbound_event_id}"


class ConversationProcessor:
    """Folds one conversation's events into every registered projection and answers inbounds.

    Each projection has its own position (its state item's lastSeq): an event is applied to
    the projections that have not seen it, so a projection added later (or whose fold version
    changed: its old state is dropped) catches up from the log through the gap filling."""

    def __init__(
        self,
        store: EventStore,
        projections: ProjectionStore,
        directory: BusinessDirectory,
        responder: Responder,
        publish_reply: PublishReply,
        default_idle_minutes: int = 60,
        cache_size: int = 20_000,
        registry: Sequence[Projection] = PROJECTIONS,
        prompt_budget_chars: int = 12_000,
        after_reply: AfterReply | None = None,
        on_handoff: OnHandoff | None = None,
    ) -> None:
        """`after_reply` is called with each inbound this processor has just answered with a new
        reply, once the projections are written (optional fact extraction); it must not raise.
        `on_handoff` is called with each HandoffRequested that hands a conversation to a person
        when this processor folds it (at least once: a refold may call it again)."""
        self._store = store
        self._projections = projections
        self._directory = directory
        self._responder = responder
        self._publish_reply = publish_reply
        self._idle = default_idle_minutes
        self._registry = tuple(registry)
        self._budget = prompt_budget_chars
        self._after_reply = after_reply
        self._on_handoff = on_handoff
        self._cache: OrderedDict[str, States] = OrderedDict()
        self._skips_ahead: dict[str, frozenset[int]] = {}  # per stream: skipped seqs past the last gap filled
        self._unchecked: set[str] = set()  # cached from a duplicate's load, the log not yet read for skips
        self._outdated: dict[str, int] = {}  # streams just loaded with an older fold's state: how far it had got
        self._seen: OrderedDict[str, int] = OrderedDict()  # per stream: the highest seq the consumer has
        self._log_read: dict[str, int] = {}  # per cached stream: the head its last log read saw (this epoch)
        self._epoch = 0  # bumped when partitions are revoked: a read begun before then is not kept
        self._unsent: OrderedDict[str, Event] = OrderedDict()  # per inbound: a reply whose one-transaction write failed
        self._cache_size = cache_size

    def partitions_revoked(self) -> None:
        """Another worker may answer this one's conversations from now on: what it read of their
        logs no longer tells it which inbounds are unanswered (see `_unanswered`)."""
        self._epoch += 1
        self._log_read.clear()

    def saw(self, stream: str, seq: int) -> None:
        """The consumer holds the conversation's event `seq` (maybe queued behind the one being
        answered): a reply appended meanwhile reads the head first instead of guessing it stale."""
        if seq > self._seen.get(stream, 0):
            self._seen[stream] = seq
            self._seen.move_to_end(stream)
            if len(self._seen) > self._cache_size:
                self._seen.popitem(last=False)

    def applied(self, stream: str, seq: int) -> bool:
        """Whether every projection of a cached conversation has applied its event `seq`. Never
        for a first event: a stream starts again at 1 after `forget` (see `handle`)."""
        states = self._cache.get(stream)
        return states is not None and 1 < seq <= applied_up_to(states)

    async def handle(self, event: Event) -> None:
        """Apply an event of a conversation (and any missing ones before it)."""
        if event.seq == 1:  # read again, or the customer's first message since `forget` erased them
            self._drop(event.streamId)  # either way the state comes from the tables, not the cache
        cached = event.streamId in self._cache
        states = await self._states(event)
        if states is None:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="forgotten").inc()
            return
        low = applied_up_to(states)
        if isinstance(event, SkipRevoked):
            await self._unskip(event, low)
            return
        if event.seq <= low:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="duplicate").inc()
            if not cached:  # read again after a restart or a rebalance: the stream's next ones are too
                self._remember(event.streamId, states)
                self._unchecked.add(event.streamId)
            if isinstance(event, MessageReceived) and low == event.seq + 1:
                await self._publish_again(event)
            return
        pending = [event]
        if event.seq > low + 1 or not cached or event.streamId in self._unchecked:
            # not read here yet: maybe a redelivery of an event skipped since; a state an older fold
            # version wrote is folded again up to where that fold had got, in one pass
            pending = await self._fill_gap(event, low, self._outdated.pop(event.streamId, 0))
        elif event.seq in self._skips_ahead.get(event.streamId, ()):
            pending = []  # redelivered, and skipped since: the log read when it was loaded said so
        batch = Batch()
        try:
            for item in pending:
                states = await self._apply_named(states, item, event, batch)
                if len(batch.writes) >= MAX_WRITES:
                    states = await self._flush(event, states, batch)
            await self._flush(event, states, batch)
        except BaseException:
            self._log_read.pop(event.streamId, None)  # maybe answered, not written: the next try reads the log
            raise
        if self._after_reply:
            for inbound, info in batch.answered:
                await self._after_reply(inbound, info)

    def _unanswered(self, event: Event) -> bool:
        """Whether `event` is known to have no reply in the log without reading it: the stream's
        last read of the log (in this epoch) ended at or before it. Past that read only the
        conversation's worker appends replies, and this process is that worker until its
        partitions are revoked (a failed try forgets the read: it may have appended one)."""
        return event.seq >= self._log_read.get(event.streamId, event.seq + 1)

    async def _fill_gap(self, event: Event, low: int, upto: int = 0) -> list[Event]:
        """The events after `low` up to `event` (or up to seq `upto`, if further), without those
        the log says are skipped. A skip record comes after the event it names, so the log is
        read past that point too (only the skip records there are parsed): events that arrive
        between a poison event and its `EventSkipped` never meet it again, nor does a poison
        event redelivered after a restart (a stream not in the cache is read once; the skipped
        seqs found past it are kept)."""
        upto, epoch = max(upto, event.seq), self._epoch
        items = await self._store.read_items(event.streamId, after_seq=low)
        if epoch == self._epoch:  # not revoked meanwhile
            self._log_read[event.streamId] = max([event.seq, *(int(i["seq"]) for i in items)])
        seen = [event_from_item(i) for i in items if int(i["seq"]) != event.seq
                and (int(i["seq"]) <= upto or i.get("type") in SKIP_TYPES)]
        logged = sorted([*seen, event], key=lambda e: e.seq)
        pending = [e for e in without_skipped(logged) if e.seq <= upto]
        ahead = frozenset(seq for seq in skipped_seqs(logged) if seq > upto)
        self._skips_ahead.pop(event.streamId, None)
        self._unchecked.discard(event.streamId)
        if ahead:  # kept (only where there are any) for redeliveries of those events
            self._skips_ahead[event.streamId] = ahead
        if event.seq > low + 1 or pending != [event]:
            log.info("worker.gap_filled", streamId=event.streamId, after=low, upto=upto, applied=len(pending),
                     skipped=sum(1 for e in logged if e.seq <= upto) - len(pending))
        return pending

    async def _apply_named(self, states: States, item: Event, handled: Event, batch: "Batch") -> States:
        """`_apply`; a failure of an event read from the log to fill the gap says which it was."""
        try:
            return await self._apply(states, item, batch)
        except UnknownSchemaVersion:
            raise
        except Exception as exc:
            if item.seq == handled.seq:
                raise
            raise EventFailed(item, exc) from exc

    async def _unskip(self, revocation: SkipRevoked, low: int) -> None:
        """A skipped event brought back (`dlq retry`): if it is an inbound with no reply yet, it
        is answered with the context it would have had; then (unless done already) every
        projection is folded again from the log up to the revocation. A failure writes nothing
        (the worker skips the event again)."""
        events = await self._store.read(revocation.streamId, limit=revocation.seq)
        info = await self._directory.info(revocation.businessId) or {}
        config = fold_config(info, self._idle)
        inbound = next((e for e in events if e.seq == revocation.payload.seq), None)
        answered = None
        if isinstance(inbound, MessageReceived):
            before = [e for e in without_skipped(events) if e.seq < inbound.seq]
            prior = {p.name: fold_events(p, before, config, inbound.businessId, inbound.userId)[0] for p in self._registry}
            at_inbound, puts = self._fold(prior, inbound, config)
            if self._answers(inbound, at_inbound, puts, config):
                _, new = await self._reply(inbound, at_inbound, info)
                answered = inbound if new else None
        if revocation.seq > low:
            states = await refold(self._projections, self._registry, events, config, revocation.businessId,
                                  revocation.userId)
            self._remember(revocation.streamId, states)
            metrics.WORKER_EVENTS.labels(type=revocation.type, outcome="applied").inc()
        if answered is not None and self._after_reply:
            await self._after_reply(answered, info)

    async def _states(self, event: Event) -> States | None:
        """The conversation's state in every projection; None for an event of a user erased
        after it happened. A state of an older fold version starts again from empty."""
        cached = self._cache.get(event.streamId)
        if cached is not None:
            self._cache.move_to_end(event.streamId)
            return cached
        stored = await self._projections.load_states(self._registry, event.businessId, event.userId)
        if all(s is None for s in stored.values()):
            forgotten_at = await self._store.forgotten_at(event.businessId, event.userId)
            if forgotten_at is not None and event.occurredAt <= forgotten_at:
                return None
        outdated = [position(s) for p in self._registry if (s := stored[p.name]) is not None and state_version(s) < p.version]
        if outdated:  # the items that fold wrote beside its state reach that far: the new fold goes as far first
            self._outdated[event.streamId] = max(outdated)
        return {p.name: _current(p, stored[p.name], event) for p in self._registry}

    def _drop(self, stream: str) -> None:
        self._cache.pop(stream, None)
        self._log_read.pop(stream, None)
        self._unchecked.discard(stream)
        self._skips_ahead.pop(stream, None)

    def _remember(self, stream: str, states: States) -> None:
        self._cache[stream] = states
        self._cache.move_to_end(stream)
        while len(self._cache) > self._cache_size:
            evicted = self._cache.popitem(last=False)[0]
            self._unchecked.discard(evicted)
            self._log_read.pop(evicted, None)

    async def _apply(self, states: States, event: Event, batch: "Batch") -> States:
        """Fold one event (and, for an inbound, its reply) into `batch`; the new states."""
        if all(event.seq <= position(s) for s in states.values()):
            return states  # a reply folded with its inbound is done
        info = await self._directory.info(event.businessId) or {}
        config = fold_config(info, self._idle)
        states, puts = self._fold(states, event, config)
        batch.add(self._registry, states, puts, event.type)
        await self._handoff_effects(event, states, puts, config)
        if self._answers(event, states, puts, config):
            reply, new = await self._reply(event, states, info, unanswered=self._unanswered(event), batch=batch)
            if new:
                batch.answered.append((event, info))
            if reply.seq == event.seq + 1:  # next in the log: its effects go in the same write
                states = self._fold_into(batch, states, reply, config)
        return states

    def _fold_into(self, batch: "Batch", states: States, event: Event, config: FoldConfig) -> States:
        states, puts = self._fold(states, event, config)
        batch.add(self._registry, states, puts, event.type)
        return states

    @staticmethod
    def _answers(event: Event, states: States, puts: dict[str, list[Put]], config: FoldConfig) -> bool:
        """Whether the AI answers this event: a new inbound, not imported, of a conversation not
        handed to a person at its seq (decided by the log: replay decides the same)."""
        return (REPLIES_FOLLOW in puts and needs_reply(event)
                and not handed_off(states[REPLIES_FOLLOW], event, config))

    async def _handoff_effects(self, event: Event, states: States, puts: dict[str, list[Put]], config: FoldConfig) -> None:
        """What folding a handoff or an outbound message sets off: a person's message (and the
        handoff notice) goes to agent.replies.v1; a handoff that took effect tells the owner and,
        when the owner took over, the customer (once: the notice's id and record derive from it)."""
        if REPLIES_FOLLOW not in puts:
            return
        if event.type in OUTBOUND_TYPES and event.type != "ReplyGenerated":
            if published_when_folded(event, puts[REPLIES_FOLLOW]):
                await self._publish_reply(event)
        elif isinstance(event, HandoffRequested) and any(p.table == "sessions" for p in puts[REPLIES_FOLLOW]):
            if self._on_handoff:
                await self._on_handoff(event)
            if event.payload.by == "owner" and event.payload.reason != OWNER_REPLIED:
                await self._send_notice(event, states)

    async def _send_notice(self, handoff: HandoffRequested, states: States) -> None:
        """Tell the customer, in their language, that a person will answer (HandoffNoticeSent
        through the channel of their last message)."""
        ctx = active_session(states[REPLIES_FOLLOW]) or {}
        last = ctx.get("lastInbound") or {}
        said = [t["content"] for t in ctx.get("lastMessages", []) if t.get("role") == "user"]
        draft = new_event(
            "HandoffNoticeSent", event_id=derive_id("handoff-notice", handoff.eventId), business_id=handoff.businessId,
            user_id=handoff.userId, location_id=handoff.locationId, channel=last.get("channel") or "system",
            payload={"sessionId": handoff.payload.sessionId, "handoffEventId": handoff.eventId,
                     "content": notice(detect_language(said[-1]) if said else "en", "owner"),
                     "deliverTo": dict(last.get("replyTo") or {})},
        )
        appended = await self._store.append(draft, external_id=f"handoff-notice:{handoff.eventId}")
        await self._publish_reply(appended.event)

    async def _answer(self, ctx: ReplyContext) -> Answer:
        """The model's answer, or, to a customer asking for a person, that one will answer."""
        if wants_human(ctx.message):
            return Answer(notice(ctx.language, "customer"), HANDOFF_MODEL, 0)
        return await self._responder.answer(ctx)

    async def _hand_off_if_asked(self, inbound: MessageReceived, reply: Event, states: States) -> None:
        """After the reply to `inbound`: a customer who asked for a person, or a model that could
        not answer (its fallback promises a colleague), hands the conversation to a person."""
        payload = reply.payload
        if not hands_off(reply):
            return
        by, reason = ("customer", inbound.payload.content[:200]) if payload.model == HANDOFF_MODEL else ("responder", "fallback")
        draft = new_event(
            "HandoffRequested", event_id=derive_id("handoff", inbound.eventId), business_id=inbound.businessId,
            user_id=inbound.userId, location_id=inbound.locationId, channel=inbound.channel,
            payload={"sessionId": payload.sessionId, "by": by, "reason": reason},
        )
        await self._store.append(draft, external_id=f"handoff:{inbound.eventId}")

    async def _flush(self, event: Event, states: States, batch: "Batch") -> States:
        """Write the batch in one transaction (with its reply, if it has one, then published); on
        a newer stored state, reload it instead."""
        if not batch.writes:
            return states
        pending = batch.reply
        try:
            appends = self._store.append_items(pending.reply, reply_key(pending.inbound.eventId)) if pending else None
            await self._projections.write(list(batch.writes.values()), appends)
        except AppendRaced:
            assert pending is not None
            return await self._append_raced(event, batch, pending)
        except StaleWrite:
            self._drop(event.streamId)  # another process wrote it: what this one read is stale
            log.info("worker.stale_state_reloaded", streamId=event.streamId, seq=event.seq)
            batch.clear()
            return await self._states(event) or states
        except Exception:
            if pending:  # the next try appends this reply on its own first (not asking the model again), so
                self._keep_unsent(pending)  # projections that cannot be written do not keep it from the customer
            raise
        self._remember(event.streamId, states)
        for kind in batch.applied:
            metrics.WORKER_EVENTS.labels(type=kind, outcome="applied").inc()
        batch.clear()
        if pending:
            self._logged(pending.reply, pending.inbound)
            await self._publish_reply(pending.reply, first=True)
            batch.answered.append((pending.inbound, pending.info))
        return states

    async def _append_raced(self, event: Event, batch: "Batch", pending: PendingReply) -> States:
        """The batch's reply could not go right after its inbound (the customer wrote again, or
        another worker answered): the batch goes back to before the reply, the reply is appended
        where the log's head is (or the one logged already is taken) and published, then the
        batch is written."""
        metrics.APPEND_CONFLICTS.labels(pending.reply.type).inc()  # a write lost to the head, as an append's
        states, batch.writes, batch.applied = pending.before
        batch.reply = None
        inbound = pending.inbound
        reply, new = await self._append_reply(pending.reply, inbound)
        if new:
            batch.answered.append((inbound, pending.info))
        if reply.seq == inbound.seq + 1:
            states = self._fold_into(batch, states, reply, fold_config(pending.info, self._idle))
        return await self._flush(event, states, batch)

    def _fold(self, states: States, event: Event, config: FoldConfig) -> tuple[States, dict[str, list[Put]]]:
        """Apply `event` to each projection that has not seen it: the new states and, per
        projection that applied it, the items it changed."""
        states, puts = dict(states), {}
        for p in self._registry:
            if event.seq > position(states[p.name]):
                states[p.name], puts[p.name] = p.apply(states[p.name], event, config)
        return states, puts

    async def _reply(self, inbound: MessageReceived, states: States, info: dict[str, Any],
                     unanswered: bool = False, batch: "Batch | None" = None) -> tuple[Event, bool]:
        """The one reply to an inbound message (and whether this call appended it): the model is
        asked only if the log has none. `unanswered`: known to have none, and to be the head as
        far as this process knows (no read needed). With `batch`, a reply that goes right after
        its inbound is left in it (`Batch.reply`), to be appended with the projections in one
        transaction and published after it (`_flush`)."""
        kept = self._unsent.pop(inbound.eventId, None)
        reply, head = (None, inbound.seq) if unanswered else await self._logged_reply(inbound)
        if reply is not None:
            await self._publish_reply(reply)
            await self._hand_off_if_asked(inbound, reply, states)
            return reply, False
        draft = kept or await self._draft(inbound, states, info)
        if head is not None and self._seen.get(inbound.streamId, 0) > head:
            head = None  # the customer wrote again meanwhile: read the head rather than lose a write to it
        if batch is not None and head == inbound.seq and kept is None and not hands_off(draft):
            batch.reply = PendingReply(draft.with_seq(head + 1), inbound, info, batch.snapshot(states))
            return batch.reply.reply, False
        reply, new = await self._append_reply(draft, inbound, head)
        await self._hand_off_if_asked(inbound, reply, states)
        return reply, new

    async def _append_reply(self, draft: Event, inbound: MessageReceived, head: int | None = None) -> tuple[Event, bool]:
        """Append `draft` on its own (at most once per inbound) and publish what the log holds:
        the reply, and whether this call appended it."""
        appended = await self._store.append(draft, external_id=reply_key(inbound.eventId), head=head)
        if not appended.duplicate:
            self._logged(appended.event, inbound)
        await self._publish_reply(appended.event, first=not appended.duplicate)
        return appended.event, not appended.duplicate

    async def _draft(self, inbound: MessageReceived, states: States, info: dict[str, Any]) -> Event:
        """The model's reply to `inbound` as an event, not yet in the log."""
        ctx = await self._context(inbound, states, info)
        sent = build_prompt(ctx, self._budget)
        answer = await self._answer(ctx)
        session = active_session(states[REPLIES_FOLLOW]) or {}
        return new_event(
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
                "promptHash": prompt_hash(sent),
                "versions": self._versions(inbound, info),
            },
        )

    def _keep_unsent(self, pending: PendingReply) -> None:
        self._unsent[pending.inbound.eventId] = pending.reply
        while len(self._unsent) > MAX_UNSENT:
            self._unsent.popitem(last=False)

    def _logged(self, reply: Event, inbound: MessageReceived) -> None:
        metrics.EVENTS_APPENDED.labels(type="ReplyGenerated", channel=inbound.channel).inc()
        metrics.REPLY_LATENCY.observe(max(0.0, (utc_now() - inbound.occurredAt).total_seconds()))
        log.info("worker.reply_appended", eventId=reply.eventId, inReplyTo=inbound.eventId, streamId=inbound.streamId)

    async def _publish_again(self, inbound: MessageReceived) -> None:
        """A duplicate of the inbound the projections stop right after: its reply may have gone
        in with them, and its publication died with the process that wrote them (kill -9 between
        the two). Published again, not as a first publication: delivery looks for its record."""
        reply = await self._store.get(inbound.streamId, inbound.seq + 1)
        if reply is not None and reply.type == "ReplyGenerated" and getattr(reply.payload, "inReplyTo", None) == inbound.eventId:
            await self._publish_reply(reply)

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

    async def _context(self, inbound: MessageReceived, states: States, info: dict[str, Any]) -> ReplyContext:
        business_type = str(info.get("businessType", "general"))
        instructions = await self._directory.system_instructions(business_type)
        rag = await self._directory.rag_entries(inbound.businessId)
        return reply_context(inbound, states, info, instructions, rag)

    def _versions(self, inbound: MessageReceived, info: dict[str, Any]) -> dict[str, str]:
        """The versions of the business data the prompt was built from (the config history's)."""
        d, business_type = self._directory, str(info.get("businessType", "general"))
        return {"businessInfo": d.version("info", inbound.businessId),
                "systemInstructions": d.version("system", business_type), "rag": d.version("rag", inbound.businessId)}


def reply_context(inbound: MessageReceived, states: States, info: dict[str, Any], instructions: str,
                  rag: list[dict[str, Any]]) -> ReplyContext:
    """The context of the reply to `inbound`, from the projections' states just after it (pure:
    `explain` rebuilds it from the log)."""
    text = inbound.payload.content
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
    )


def prompt_hash(prompt: list[dict[str, str]]) -> str:
    """The SHA-256 of a prompt's messages (what ReplyGenerated records and `explain` checks)."""
    return hashlib.sha256(orjson.dumps(prompt)).hexdigest()
