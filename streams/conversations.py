"""Applies one conversation's events in seq order: projections, then the reply (docs/architecture.md,
"the rules every part keeps").

For each event: duplicates (seq <= lastSeq) are skipped, a gap is filled from the log, the
pure fold computes the new items, a MessageReceived gets its one reply, and the projected items
are written in one transaction. A reply that can go right after its inbound (the usual case) is
folded at once and appended in that same transaction, then published: its own arrival from the
topic is a duplicate that costs nothing. A worker killed between the transaction and the publish
leaves the inbound's record uncommitted; whoever meets it again finds the projections stopping
right after it and publishes the reply logged there (`Replier.publish_again`). A reply that cannot go
right after its inbound is appended (where the log's head is) and published before the
projections are written. The log is searched for an inbound's reply only where another process
may have written one (see `GapFiller.unanswered`). Every step is idempotent, so a crash anywhere is
repaired by processing the event again.

The parts: `reply_policy` (pure: what a reply is built from, its key, its prompt's hash),
`replier` (the one reply per inbound), `gaps` and `unskip` (gap filling, skipped events),
`state_cache` (the states loaded once) and `batch` (the one-transaction write).
"""

from __future__ import annotations

from collections.abc import Sequence

from agentstream import metrics
from agentstream.adapters.llm import Responder
from agentstream.adapters.signals import Signals
from agentstream.events import Event, MessageReceived, SkipRevoked, UnknownSchemaVersion
from agentstream.projections.base import FoldConfig, Projection, Put, position
from agentstream.projections.conversation import handed_off
from agentstream.projections.kinds import needs_reply
from agentstream.registry import PROJECTIONS
from agentstream.streams.batch import MAX_WRITES, Batch, BatchWriter, Folding
from agentstream.streams.burst_keeper import BurstKeeper
from agentstream.streams.clock import SYSTEM_CLOCK
from agentstream.streams.dead_letters import EventFailed
from agentstream.streams.gaps import GapFiller
from agentstream.streams.media_wait import MediaWait
from agentstream.streams.ports import Clock, Directory, EventLog, StateStore
from agentstream.streams.replier import OnHandoff, PublishReply, Replier
from agentstream.streams.reply_policy import REPLIES_FOLLOW, States
from agentstream.streams.spend import SpendMeter
from agentstream.streams.state_cache import StateCache, applied_up_to
from agentstream.streams.unskip import AfterReply, Unskipper

__all__ = ["AfterReply", "ConversationProcessor", "OnHandoff", "PublishReply"]


class ConversationProcessor:
    """Folds one conversation's events into every registered projection and answers inbounds.

    Each projection has its own position (its state item's lastSeq): an event is applied to
    the projections that have not seen it, so a projection added later (or whose fold version
    changed: its old state is dropped) catches up from the log through the gap filling."""

    def __init__(
        self,
        store: EventLog,
        projections: StateStore,
        directory: Directory,
        responder: Responder,
        publish_reply: PublishReply,
        default_idle_minutes: int = 60,
        cache_size: int = 20_000,
        registry: Sequence[Projection] = PROJECTIONS,
        prompt_budget_chars: int = 12_000,
        after_reply: AfterReply | None = None,
        on_handoff: OnHandoff | None = None,
        clock: Clock = SYSTEM_CLOCK,
        media_wait: MediaWait | None = None,
        spend: SpendMeter | None = None,
        default_quiet_ms: int | None = 0,
        signals: Signals | None = None,
    ) -> None:
        """Assembles the parts. `after_reply` is called with each inbound this processor has just
        answered with a new reply, once the projections are written (optional fact extraction);
        it must not raise. `on_handoff` is called with each HandoffRequested that hands a
        conversation to a person when this processor folds it (at least once: a refold may call
        it again). `spend`: the budget check before each model call and the spend each reply adds. `default_quiet_ms`: the burst window of businesses that set none
        (0: a reply per message; None: the channels' defaults, as the worker process has unless told)."""
        self._gaps = GapFiller(store)
        self._states = StateCache(store, projections, registry, self._gaps, cache_size)
        self._folding = Folding(registry, directory, default_idle_minutes)
        self._replier = Replier(store, directory, responder, publish_reply, on_handoff, prompt_budget_chars,
                                cache_size, clock, media_wait, spend, signals)
        self._writer = BatchWriter(store, projections, self._replier, self._states, self._folding)
        self._unskipper = Unskipper(store, projections, self._folding, self._replier, self._states, self._answers,
                                    after_reply)
        self._after_reply = after_reply
        self.bursts = BurstKeeper(store, self._states, self._folding, self._replier, after_reply, default_quiet_ms, clock)

    def partitions_revoked(self) -> None:
        """Another worker may answer this one's conversations from now on: what it read of their
        logs no longer tells it which inbounds are unanswered (see `GapFiller.unanswered`)."""
        self._gaps.revoked()
        for stream in self.bursts.revoked():  # read again from the committed offsets: the log says what is open
            self._states.drop(stream)

    def saw(self, stream: str, seq: int, kind: str | None = None) -> None:
        """The consumer holds the conversation's event `seq` (maybe queued behind the one being
        answered): a reply appended meanwhile reads the head first instead of guessing it stale,
        and a burst's draft is asked again if it is a message."""
        self._replier.saw(stream, seq)
        if kind == "MessageReceived":
            self.bursts.saw_inbound(stream, seq)

    def applied(self, stream: str, seq: int) -> bool:
        """Whether every projection of a cached conversation has applied its event `seq`. Never
        for a first event: a stream starts again at 1 after `forget` (see `handle`)."""
        return self._states.applied(stream, seq)

    async def handle(self, event: Event) -> None:
        """Apply an event of a conversation (and any missing ones before it)."""
        if event.seq == 1:  # read again, or the customer's first message since `forget` erased them
            self._states.drop(event.streamId)  # either way the state comes from the tables, not the cache
        cached = self._states.cached(event.streamId)
        states = await self._states.load(event)
        if states is None:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="forgotten").inc()
            return
        low = applied_up_to(states)
        if isinstance(event, SkipRevoked):
            await self._unskipper.unskip(event, low)
            return
        if event.seq <= low:
            metrics.WORKER_EVENTS.labels(type=event.type, outcome="duplicate").inc()
            if not cached:  # read again after a restart or a rebalance: the stream's next ones are too
                self._states.remember(event.streamId, states)
                self._gaps.unchecked(event.streamId)
                await self._recover_burst(event, states)
            if isinstance(event, MessageReceived) and low == event.seq + 1:
                await self._replier.publish_again(event)
            return
        pending = [event]
        if self._gaps.must_read(event, low, cached):
            # not read here yet: maybe a redelivery of an event skipped since; a state an older fold
            # version wrote is folded again up to where that fold had got, in one pass
            pending = await self._gaps.fill(event, low, self._states.outdated(event.streamId))
        elif self._gaps.skipped(event):
            pending = []  # redelivered, and skipped since: the log read when it was loaded said so
        batch = Batch()
        try:
            for item in pending:
                states = await self._apply_named(states, item, event, batch)
                if len(batch.writes) >= MAX_WRITES:
                    states = await self._writer.flush(event, states, batch)
            await self._writer.flush(event, states, batch)
        except BaseException:
            self._gaps.forget_read(event.streamId)  # maybe answered, not written: the next try reads the log
            raise
        if self._after_reply:
            for inbound, info in batch.answered:
                await self._after_reply(inbound, info)

    async def _apply_named(self, states: States, item: Event, handled: Event, batch: Batch) -> States:
        """`_apply`; a failure of an event read from the log to fill the gap says which it was."""
        try:
            return await self._apply(states, item, batch)
        except UnknownSchemaVersion:
            raise
        except Exception as exc:
            if item.seq == handled.seq:
                raise
            raise EventFailed(item, exc) from exc

    async def _apply(self, states: States, event: Event, batch: Batch) -> States:
        """Fold one event (and, for an inbound, its reply) into `batch`; the new states."""
        if all(event.seq <= position(s) for s in states.values()):
            return states  # a reply folded with its inbound is done
        info, config = await self._folding.settings(event.businessId)
        states, puts = self._folding.fold_into(batch, states, event, config)
        await self._replier.handoff_effects(event, states, puts)
        if self._answers(event, states, puts, config):
            window = self.bursts.window(info, event.channel)
            if window.waits or self.bursts.is_open(event.streamId):
                if not self.bursts.is_open(event.streamId):
                    await self._replier.typing(event)
                self.bursts.add(event, window)  # answered with the rest of its burst (its record held)
                return states
            reply, new = await self._replier.reply(event, states, info, unanswered=self._gaps.unanswered(event), batch=batch)
            if new:
                batch.answered.append((event, info))
            if reply.seq == event.seq + 1:  # next in the log: its effects go in the same write
                states, _ = self._folding.fold_into(batch, states, reply, config)
        if REPLIES_FOLLOW in puts and needs_reply(event):
            await self._replier.opt_change_of(event)  # type: ignore[arg-type]
        return states

    async def _recover_burst(self, event: Event, states: States) -> None:
        """A conversation read again from an uncommitted offset: the inbounds from `event` on
        that no reply in the log covers form its open burst (held by this record)."""
        if self.bursts.is_open(event.streamId):
            return
        todo = await self.bursts.unanswered(event, states)
        if not todo:
            return
        info, config = await self._folding.settings(event.businessId)
        window = self.bursts.window(info, todo[-1].channel)
        if window.waits and not handed_off(states[REPLIES_FOLLOW], todo[-1], config):
            self.bursts.recover(todo, window)

    @staticmethod
    def _answers(event: Event, states: States, puts: dict[str, list[Put]], config: FoldConfig) -> bool:
        """Whether the AI answers this event: a new inbound, not imported, of a conversation not
        handed to a person at its seq (decided by the log: replay decides the same)."""
        return (REPLIES_FOLLOW in puts and needs_reply(event)
                and not handed_off(states[REPLIES_FOLLOW], event, config))
