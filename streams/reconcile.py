"""Publishes log events the stream lost (nothing is lost on a crash or a trimmed stream): the events table is the truth.

For a conversation, the events past what its least advanced projection applied (the lowest
lastSeq of the registered projections' state items) are published again to
`agent.events.v1`, in seq order. The worker skips what it has already seen, so running this
too often costs reads, never correctness.

A bridge that lost stream records knows from when (its checkpoint's time): `reconcile_window`
looks only at the conversations that had events appended since then (the ingest index,
ingestBucket-ingestedAt-index), so its cost follows the window, not the table. It runs in a
task of its own (`Reconciler`), never inside the shard reader that found the loss, and the
window asked for is kept in the leases table until a run covered it, so a bridge that dies
first leaves it to the next one. `reconcile` (the command without --since) scans the table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from agentstream.adapters.kafka.client import dumps, event_headers
from agentstream.adapters.dynamo.pending_reconcile import FULL, PendingReconcile
from agentstream.events import iso, utc_now
from agentstream.streams.ports import EventLog, StreamHeads
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    streams: int = 0
    behind: int = 0
    published: int = 0


class ReconcileLog(EventLog, StreamHeads, Protocol):
    async def ingested(self, since: datetime, until: datetime) -> dict[str, int]:
        """The streams that had events appended between `since` and `until` (the ingest index)."""
        ...


Applied = Callable[[list[str]], Awaitable[dict[str, int]]]  # streams -> the lowest lastSeq its projections applied


async def _publish_behind(store: EventLog, applied_of: Applied, producer: Any, topic: str,
                          heads: dict[str, int], report: ReconcileReport) -> None:
    """Publish each stream's events past what its projections applied (`heads`: stream -> the
    seq it is known to have reached, or a seq it holds; 0 reads it anyway)."""
    streams = sorted(heads)
    report.streams += len(streams)
    applied = await applied_of(streams) if streams else {}
    for stream in streams:
        done = applied[stream]
        if heads[stream] and heads[stream] <= done:
            continue
        events = await store.read(stream, after_seq=done)
        report.behind += bool(events)
        for event in events:
            await producer.send(topic, key=stream.encode(), value=dumps(event.to_json_dict()),
                                headers=event_headers(event.seq, event.type))
            report.published += 1
    await producer.flush()


async def reconcile(store: ReconcileLog, applied: Applied, producer: Any, topic: str,
                    business_id: str | None = None) -> ReconcileReport:
    """Every conversation of the log (a table scan): publish the events past its applied seq
    (`applied(streams)`: what the registered projections' state items say each one reached)."""
    report = ReconcileReport()
    heads = {s: h for s, h in (await store.stream_heads()).items()
             if not business_id or s.startswith(business_id + "#")}
    await _publish_behind(store, applied, producer, topic, heads, report)
    log.info("reconcile.done", streams=report.streams, behind=report.behind, published=report.published)
    return report


async def reconcile_window(store: ReconcileLog, applied: Applied, producer: Any, topic: str,
                           since: datetime, until: datetime | None = None) -> ReconcileReport:
    """The conversations that had events appended between `since` and `until` (default now),
    found through the ingest index: publish the events past each one's applied seq."""
    report = ReconcileReport()
    appended = await store.ingested(since, until or utc_now())
    await _publish_behind(store, applied, producer, topic, {s: 0 for s in appended}, report)
    log.info("reconcile.window_done", since=iso(since), streams=report.streams, behind=report.behind,
             published=report.published)
    return report


RunWindow = Callable[[datetime | None], Awaitable[ReconcileReport]]  # since (None: the whole table)


class Reconciler:
    """Runs the reconciliations a bridge asks for in a task of its own, one at a time; asks
    that come while one runs are merged (the earliest start wins) into the next run."""

    def __init__(self, run: RunWindow, pending: PendingReconcile, retry_s: float = 5.0) -> None:
        self._run = run
        self._pending = pending
        self._retry_s = retry_s
        self._wake = asyncio.Event()

    async def request(self, since: datetime | None) -> None:
        """Ask for the events appended since `since` (None: every conversation) to be
        reconciled; kept in the table before this returns, so a crash never loses the ask."""
        await self._pending.ask(FULL if since is None else iso(since))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile what is pending (also what a stopped bridge left), until `stop`."""
        self._wake.set()
        while not stop.is_set():
            await self._wait(stop)
            if stop.is_set():
                return
            try:
                asked = await self._pending.get()
                if asked is None:
                    continue
                since = asked[0]
                await self._run(None if since == FULL else datetime.fromisoformat(since.replace("Z", "+00:00")))
                await self._pending.done(asked)
            except Exception as exc:  # the ask stays pending: tried again
                log.warning("reconcile.failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await wait_or_stop(stop, self._retry_s)
                self._wake.set()

    async def _wait(self, stop: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        self._wake.clear()


def window_start(times: Sequence[str | None], margin: timedelta) -> datetime | None:
    """Where a lost window starts: the earliest of the lost positions' times less `margin`
    (appenders' clocks differ, and an append stamped earlier can land later); None (the whole
    table) when a position has no time."""
    if not times or any(t is None for t in times):
        return None
    earliest = min(datetime.fromisoformat(str(t).replace("Z", "+00:00")) for t in times)
    return earliest - margin
