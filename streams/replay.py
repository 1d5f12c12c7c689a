"""Rebuilds the registered projections from the log (projections are pure folds, so replaying gives the same items): all, one business or one user.

Each conversation is read in seq order (a Query per stream, streams in parallel; or off
`agent.events.v1`, see `topic_source`) and folded with the same pure fold the worker uses; the
items are written with the same monotonic puts, so a replay beside the live worker never moves
state backwards. `verify` folds the same way and lists where the live tables differ instead of
writing.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from agentstream.adapters.dynamo.config_history import info_key
from agentstream.events import Event, MessageReceived, ReplyGenerated, iso
from agentstream.projections.base import FoldConfig, Projection, Put, fold_events, state_version
from agentstream.projections.kinds import no_reply_reason
from agentstream.registry import PROJECTIONS
from agentstream.streams.bursts import covered_twice
from agentstream.streams.ports import (
    EventLog, ItemBatches, LiveItemsPort, StateStore, StoreConfig, StreamHeads, VersionedDirectory,
)
from agentstream.streams.reply_policy import fold_config
from agentstream.streams.slot_rebuild import rebuild_slots
from agentstream.streams.spend import SpendRebuild, UsageLedger
from agentstream.streams.topic_source import TopicEvents

log = structlog.get_logger(__name__)


@dataclass
class ReplayReport:
    streams: int = 0
    events: int = 0
    differences: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    business_id: str | None = None
    user_id: str | None = None
    as_of: datetime | None = None

    def wants(self, stream: str) -> bool:
        business, _, user = stream.partition("#")
        return (self.business_id is None or business == self.business_id) and (self.user_id is None or user == self.user_id)


class ReplayLog(EventLog, StreamHeads, Protocol):
    """The event log, with the head of every conversation in it."""


@dataclass(frozen=True)
class ReplayStores:
    """What a replay reads and writes: the log, the projection items (monotonic puts, the live
    items `verify` compares with, and `batches` for a rebuild into empty tables), the business
    data with its history, and the usage table whose months' spend it sets."""

    log: ReplayLog
    states: StateStore
    directory: VersionedDirectory
    ledger: UsageLedger
    live: LiveItemsPort
    batches: ItemBatches | None = None


class Replayer:
    """Rebuilds projections. With `stores.batches` (for empty target tables) every item goes
    out in unconditional batches across conversations (fast); otherwise writes are monotonic."""

    def __init__(self, stores: ReplayStores, settings: StoreConfig, concurrency: int = 16,
                 registry: Sequence[Projection] = PROJECTIONS) -> None:
        """`registry`: the projections to rebuild (all registered ones by default)."""
        self._registry = tuple(registry)
        self._batch = stores.batches
        self._live = stores.live
        self._settings = settings
        self._store = stores.log
        self._projections = stores.states
        self._directory = stores.directory
        self._slots = asyncio.Semaphore(concurrency)
        self._idle = settings.session_idle_minutes
        self._history: dict[str, tuple[list[str], list[FoldConfig], FoldConfig]] = {}
        self._appointments: dict[str, list[dict[str, Any]]] = {}  # business -> its folded appointments (slot items)
        self._spend = SpendRebuild(stores.ledger, self._directory.info)

    async def streams(self, scope: Scope) -> dict[str, int]:
        """The conversations in scope with their head seq."""
        if scope.business_id and scope.user_id:
            stream = f"{scope.business_id}#{scope.user_id}"
            head = await self._store.head(stream)
            return {stream: head} if head else {}
        return {s: h for s, h in (await self._store.stream_heads()).items() if scope.wants(s)}

    async def run(self, scope: Scope, verify: bool = False, progress: Callable[[int], None] | None = None,
                  topic: TopicEvents | None = None, heads: dict[str, int] | None = None) -> ReplayReport:
        """Replay from the events table (the conversations in `heads`, found if not given), or
        from what was read off the topic if `topic` is given."""
        report = ReplayReport()
        if topic is not None:
            heads = {s: len(e) for s, e in topic.by_stream.items()}
        elif heads is None:
            heads = await self.streams(scope)
        report.streams = len(heads)

        async def one(stream: str) -> None:
            async with self._slots:
                events = await self._from_topic(stream, topic.by_stream[stream]) if topic else await self._store.read(stream)
                count, diffs = await self._replay_stream(stream, events, scope, verify)
            report.events += count
            report.differences.extend(diffs)
            if progress:
                progress(len(topic.by_stream[stream]) if topic else count)

        await asyncio.gather(*(one(s) for s in sorted(heads)))
        if self._batch:
            await self._batch.flush()
        if scope.user_id is None and scope.as_of is None:
            for business_id, appointments in sorted(self._appointments.items()):
                info = await self._directory.info(business_id)
                report.differences += await rebuild_slots(self._store, info, business_id, appointments, verify)
        if not verify and scope.user_id is None and scope.as_of is None:  # whole businesses: their months' spend
            await self._spend.write()
        return report

    async def _from_topic(self, stream: str, events: list[Event]) -> list[Event]:
        """A conversation's events off the topic, without what `forget` erased, deduplicated, in
        seq order; read from the table instead when the topic lacks some of them."""
        forgotten = await self._store.forgotten_at(*stream.split("#", 1))
        if forgotten is not None:
            events = [e for e in events if e.occurredAt > forgotten]
        unique = sorted({e.seq: e for e in events}.values(), key=lambda e: e.seq)
        if [e.seq for e in unique] != list(range(1, len(unique) + 1)):
            log.info("replay.gap_read_from_table", streamId=stream, from_topic=len(unique))
            return await self._store.read(stream)
        return unique

    async def _replay_stream(self, stream: str, events: list[Event], scope: Scope, verify: bool) -> tuple[int, list[str]]:
        business_id, _, user_id = stream.partition("#")
        if scope.as_of is not None:
            events = [e for e in events if e.occurredAt <= scope.as_of]
        if not events:  # an erased customer, or none of the events is up to --as-of
            return 0, []
        config = await self._configs(business_id)
        await self._spend.add(business_id, events)
        writes: list[tuple[Projection, Put]] = []
        for p in self._registry:
            state, puts = fold_events(p, events, config, business_id, user_id)
            writes += [(p, put) for put in puts] + [(p, Put(p.table, state, version=p.version))]
            if p.name == "appointments":
                self._appointments.setdefault(business_id, []).extend((state.get("appointments") or {}).values())
        if verify:
            return len(events), unwanted_replies(events) + covered_twice(events) + await self._compare(writes)
        if self._batch:
            for _, put in writes:
                self._batch.add(getattr(self._settings.tables, put.table), [put.item])
        else:
            await self._projections.write_bulk([put for _, put in writes])
        return len(events), []

    async def _configs(self, business_id: str) -> Callable[[Event], FoldConfig]:
        """The business settings in force at each event's time (the config history; the current
        info before the first recorded version), so a replay after a change reproduces the past."""
        if business_id not in self._history:
            current = await self._directory.info(business_id) or {}
            versions = await self._directory.history.versions(info_key(business_id))
            self._history[business_id] = ([v[0] for v in versions], [fold_config(v[1], self._idle) for v in versions],
                                          fold_config(current, self._idle))
        starts, configs, current = self._history[business_id]

        def at(event: Event) -> FoldConfig:
            i = bisect.bisect_right(starts, iso(event.occurredAt)) - 1
            return configs[i] if i >= 0 else (configs[0] if configs else current)

        return at

    async def _compare(self, writes: list[tuple[Projection, Put]]) -> list[str]:
        diffs: list[str] = []
        for p, put in writes:
            table = getattr(self._settings.tables, put.table)
            key = {k: put.item[k] for k in p.owns[put.table]}
            live = await self._live.get(table, key)
            if live != put.item:
                diffs.append(f"{table} {key}: " + _describe_difference(put, live))
        return diffs


def unwanted_replies(events: list[Event]) -> list[str]:
    """The AI replies in a conversation to messages that get none (a reaction, a location without
    text, …): what the log says was done against what the fold decides."""
    inbounds = {e.eventId: e for e in events if isinstance(e, MessageReceived)}
    found = []
    for reply in (e for e in events if isinstance(e, ReplyGenerated)):
        inbound = inbounds.get(reply.payload.inReplyTo)
        reason = no_reply_reason(inbound) if inbound is not None else None
        if reason:
            found.append(f"{reply.streamId} reply {reply.eventId} (seq {reply.seq}) answers {inbound.eventId}, "
                         f"{reason}, which gets no reply")
    return found


def _describe_difference(put: Put, live: dict[str, Any] | None) -> str:
    if live is None:
        return "missing in the live table"
    if put.version and state_version(live) != put.version:
        return f"written by fold version {state_version(live)}; this build folds version {put.version} (replay rebuilds it)"
    expected = put.item
    changed = sorted(k for k in expected.keys() | live.keys() if expected.get(k) != live.get(k))
    return "differs in " + ", ".join(changed)
