"""The transactional batch: the effects of a conversation's events folded since the last write,
written in one transaction with the reply that goes right after its inbound (then published).

A reply that cannot go there (the customer wrote again, or another worker answered: the append
lost its race) is appended where the log's head is, and the batch is written without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from agentstream import metrics
from agentstream.adapters.dynamo.projection_store import AppendRaced, StaleWrite
from agentstream.events import Event, MessageReceived
from agentstream.projections.base import FoldConfig, Projection, Put, key_of, position
from agentstream.streams.ports import Directory, EventLog, StateStore
from agentstream.streams.reply_policy import States, fold_config, reply_key

if TYPE_CHECKING:
    from agentstream.streams.state_cache import StateCache

log = structlog.get_logger(__name__)
MAX_WRITES = 90  # puts in one transaction (DynamoDB takes 100, and a reply's append adds 2)
Snapshot = tuple[States, dict[tuple[str, tuple[Any, ...]], Put], list[str]]


@dataclass
class PendingReply:
    """A reply drafted at its inbound's seq + 1, appended in the projections' transaction; `before`
    is the batch as it was before the reply was folded, which a lost race goes back to."""

    reply: Event
    inbound: MessageReceived
    info: dict[str, Any]
    before: Snapshot
    side: list[Any] = field(default_factory=list)  # side items of the reply's append (its model call's spend)


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


class ReplyWriter(Protocol):
    """What the batch asks of the replier (streams/replier.Replier) about a reply it carries."""

    async def append_reply(self, draft: Event, inbound: MessageReceived, head: int | None = None) -> tuple[Event, bool]: ...

    def keep_unsent(self, pending: PendingReply) -> None: ...

    def logged(self, reply: Event, inbound: MessageReceived) -> None: ...

    async def publish(self, reply: Event, first: bool = False) -> None: ...


class Folding:
    """Every registered projection's fold, with the business settings it reads."""

    def __init__(self, registry: Sequence[Projection], directory: Directory, default_idle_minutes: int) -> None:
        self.registry = tuple(registry)
        self._directory = directory
        self._idle = default_idle_minutes

    async def settings(self, business_id: str) -> tuple[dict[str, Any], FoldConfig]:
        """The business's info and the fold settings it makes."""
        info = await self._directory.info(business_id) or {}
        return info, self.config(info)

    def config(self, info: dict[str, Any]) -> FoldConfig:
        return fold_config(info, self._idle)

    def fold(self, states: States, event: Event, config: FoldConfig) -> tuple[States, dict[str, list[Put]]]:
        """Apply `event` to each projection that has not seen it: the new states and, per
        projection that applied it, the items it changed."""
        states, puts = dict(states), {}
        for p in self.registry:
            if event.seq > position(states[p.name]):
                states[p.name], puts[p.name] = p.apply(states[p.name], event, config)
        return states, puts

    def fold_into(self, batch: Batch, states: States, event: Event, config: FoldConfig) -> tuple[States, dict[str, list[Put]]]:
        """`fold`, its effects added to `batch`."""
        states, puts = self.fold(states, event, config)
        batch.add(self.registry, states, puts, event.type)
        return states, puts


class BatchWriter:
    """Writes a batch in one transaction, with its reply if it has one."""

    def __init__(self, store: EventLog, projections: StateStore, replier: ReplyWriter, states: StateCache,
                 folding: Folding) -> None:
        self._store = store
        self.projections = projections
        self._replier = replier
        self._states = states
        self._folding = folding

    async def flush(self, event: Event, states: States, batch: Batch) -> States:
        """Write the batch in one transaction (with its reply, if it has one, then published); on
        a newer stored state, reload it instead."""
        if not batch.writes:
            return states
        pending = batch.reply
        try:
            appends = self._store.append_items(pending.reply, reply_key(pending.inbound.eventId), pending.side) if pending else None
            await self.projections.write(list(batch.writes.values()), appends)
        except AppendRaced:
            assert pending is not None
            return await self._append_raced(event, batch, pending)
        except StaleWrite:
            self._states.drop(event.streamId)  # another process wrote it: what this one read is stale
            log.info("worker.stale_state_reloaded", streamId=event.streamId, seq=event.seq)
            batch.clear()
            return await self._states.load(event) or states
        except Exception:
            if pending:  # the next try appends this reply on its own first (not asking the model again), so
                self._replier.keep_unsent(pending)  # projections that cannot be written do not keep it from the customer
            raise
        self._states.remember(event.streamId, states)
        for kind in batch.applied:
            metrics.WORKER_EVENTS.labels(type=kind, outcome="applied").inc()
        batch.clear()
        if pending:
            self._replier.logged(pending.reply, pending.inbound)
            await self._replier.publish(pending.reply, first=True)
            batch.answered.append((pending.inbound, pending.info))
        return states

    async def _append_raced(self, event: Event, batch: Batch, pending: PendingReply) -> States:
        """The batch's reply could not go right after its inbound (the customer wrote again, or
        another worker answered): the batch goes back to before the reply, the reply is appended
        where the log's head is (or the one logged already is taken) and published, then the
        batch is written."""
        metrics.APPEND_CONFLICTS.labels(pending.reply.type).inc()  # a write lost to the head, as an append's
        states, batch.writes, batch.applied = pending.before
        batch.reply = None
        inbound = pending.inbound
        reply, new = await self._replier.append_reply(pending.reply, inbound)
        if new:
            batch.answered.append((inbound, pending.info))
        if reply.seq == inbound.seq + 1:
            states, _ = self._folding.fold_into(batch, states, reply, self._folding.config(pending.info))
        return await self.flush(event, states, batch)
