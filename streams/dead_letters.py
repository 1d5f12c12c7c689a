"""Skipped events: a poison event is recorded in its conversation as `EventSkipped`,
so the folds go on without it; `dlq list` shows what is skipped and `dlq retry` brings an event
back with `SkipRevoked` and folds the customer's projections again from the log.

The worker records a skip (`SkipRecorder`) once an event has failed every attempt; the index
entry is written first, so a crash between the two leaves an entry `dlq list` checks against
the log (and shows only if the log says skipped), never a skip the list cannot find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncio

import structlog

from agentstream import idempotency as keys
from agentstream.adapters.dynamo.dead_letters import DeadLetterIndex
from agentstream.adapters.dynamo.event_store import EventStore, event_from_item
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, EventSkipped, SkipRevoked, derive_id, iso, new_event
from agentstream.projections.base import FoldConfig, Item, Projection, Put, fold_events, key_of
from agentstream.projections.skips import SKIP_TYPES

log = structlog.get_logger(__name__)
ERROR_LIMIT = 2000


def skip_key(event_id: str, revoked_at: int | None = None) -> str:
    """The external id of a skip: one per event, and one more after each revocation."""
    return keys.skipped(event_id, revoked_at)


def revoke_key(event_id: str, skip_seq: int) -> str:
    return keys.unskipped(event_id, skip_seq)


class EventFailed(Exception):
    """Applying an earlier event of the conversation (read from the log to fill a gap) failed:
    that event, not the one being handled, is the one to skip if it fails for good."""

    def __init__(self, event: Event, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.event = event


class SkipRecorder:
    """Records in the log that an event failed for good (the worker's last resort)."""

    def __init__(self, store: EventStore, index: DeadLetterIndex) -> None:
        self._store = store
        self._index = index

    async def record(self, event: Event, stage: str, error: str) -> Event | None:
        """Append `EventSkipped` naming `event` (for a failed `SkipRevoked`: the event it brought
        back, which is skipped again); the logged skip, None if that event is not in the log."""
        target: Event | None = event
        revoked_at = None
        if isinstance(event, SkipRevoked):
            target, revoked_at = await self._store.get(event.streamId, event.payload.seq), event.seq
        if target is None:
            return None
        key = skip_key(target.eventId, revoked_at)
        await self._index.add(target.businessId, target.eventId)
        skip = new_event("EventSkipped", event_id=derive_id(key), business_id=target.businessId,
                         user_id=target.userId, location_id=target.locationId, channel="system",
                         payload={"seq": target.seq, "stage": stage, "error": error[:ERROR_LIMIT]})
        appended = await self._store.append(skip, external_id=key)
        log.warning("worker.event_skipped", skippedEventId=target.eventId, seq=target.seq, skipSeq=appended.event.seq)
        return appended.event


@dataclass(frozen=True)
class Skipped:
    """A skipped event as `dlq list` shows it."""

    eventId: str
    businessId: str
    userId: str
    seq: int
    type: str
    occurredAt: str
    stage: str
    error: str
    skippedAt: str
    skipSeq: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def skip_of(store: EventStore, stream: str, seq: int) -> EventSkipped | None:
    """The skip in force for a logged event: the last skip record naming it, if an EventSkipped."""
    last: Event | None = None
    for item in await store.read_items(stream, after_seq=seq):
        if item.get("type") in SKIP_TYPES and int((item.get("payload") or {}).get("seq", 0)) == seq:
            last = event_from_item(item)
    return last if isinstance(last, EventSkipped) else None


async def skipped_events(store: EventStore, index: DeadLetterIndex, businesses: Sequence[str]) -> list[Skipped]:
    """The events skipped now in these businesses: the index's entries the log confirms (per entry
    one eventId lookup and one read of the stream after the event)."""
    found: list[Skipped] = []
    for business in businesses:
        for event_id in await index.event_ids(business):
            event = await store.by_id(event_id)
            skip = await skip_of(store, event.streamId, event.seq) if event is not None else None
            if event is None or skip is None:
                continue  # revoked (or erased) since: the log says it is not skipped
            found.append(Skipped(event.eventId, event.businessId, event.userId, event.seq, event.type,
                                 iso(event.occurredAt), skip.payload.stage, skip.payload.error, iso(skip.occurredAt), skip.seq))
    return found


async def revoke(store: EventStore, index: DeadLetterIndex, skipped: Skipped) -> Event:
    """Append `SkipRevoked` for a skipped event (once per skip) and drop its index entry."""
    revocation = new_event("SkipRevoked", event_id=derive_id(revoke_key(skipped.eventId, skipped.skipSeq)),
                           business_id=skipped.businessId, user_id=skipped.userId, channel="system",
                           payload={"seq": skipped.seq})
    appended = (await store.append(revocation, external_id=revoke_key(skipped.eventId, skipped.skipSeq))).event
    await index.remove(skipped.businessId, skipped.eventId)
    return appended


async def retry_outcome(store: EventStore, projections: ProjectionStore, registry: Sequence[Projection],
                        skipped: Skipped, revocation: Event) -> str | None:
    """What became of a retried event: "applied" once every projection is past the revocation,
    "skipped again: <error>" if it failed again, None while neither (no worker has read it)."""
    skip = await skip_of(store, revocation.streamId, skipped.seq)
    if skip is not None and skip.seq > revocation.seq:
        return f"skipped again: {skip.payload.error}"
    states = await projections.load_states(registry, skipped.businessId, skipped.userId)
    if all(s is not None and int(s.get("lastSeq", 0)) >= revocation.seq for s in states.values()):
        return "applied"
    return None


async def refold(projections: ProjectionStore, registry: Sequence[Projection], events: list[Event], config: FoldConfig,
                 business_id: str, user_id: str) -> dict[str, Item]:
    """Fold a customer's events (up to a `SkipRevoked`, the last of `events`) into every projection
    and write it (monotonic puts); items the fold of the events before it wrote and this one does
    not are deleted. The new states."""
    upto = events[-1].seq
    states: dict[str, Item] = {}
    writes: list[Put] = []
    stale: list[tuple[Projection, Put]] = []
    for p in registry:
        state, puts = fold_events(p, events, config, business_id, user_id)
        _, before = fold_events(p, [e for e in events if e.seq < upto], config, business_id, user_id)
        kept = {(put.table, key_of(p, put)) for put in (*puts, Put(p.table, state)) if put.table in p.owns}
        stale += [(p, put) for put in before if (put.table, key_of(p, put)) not in kept]
        states[p.name] = state
        writes += [*puts, Put(p.table, state, version=p.version)]
    await projections.write_bulk(writes)
    if stale:
        await projections.delete_stale(stale)
    return states


@dataclass(frozen=True)
class Retried:
    skipped: Skipped
    revocation_seq: int
    outcome: str | None  # "applied", "skipped again: …", or None: not applied yet


async def retry_skips(store: EventStore, index: DeadLetterIndex, projections: ProjectionStore,
                      registry: Sequence[Projection], businesses: Sequence[str], event_id: str | None,
                      wait_s: float = 0.0) -> list[Retried]:
    """Revoke the skips of `businesses` (only `event_id`'s, if given); wait up to `wait_s` for
    what became of each. LookupError when `event_id` is not skipped."""
    chosen = [s for s in await skipped_events(store, index, businesses) if event_id in (None, s.eventId)]
    if event_id and not chosen:
        raise LookupError(f"event {event_id!r} is not skipped (see `agentstream dlq list`)")
    revoked = [(s, await revoke(store, index, s)) for s in chosen]
    outcomes: dict[int, str | None] = dict.fromkeys(range(len(revoked)))
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        for i, (s, revocation) in enumerate(revoked):
            if outcomes[i] is None:
                outcomes[i] = await retry_outcome(store, projections, registry, s, revocation)
        if all(outcomes.values()) or asyncio.get_running_loop().time() >= deadline:
            return [Retried(s, r.seq, outcomes[i]) for i, (s, r) in enumerate(revoked)]
        await asyncio.sleep(0.5)
