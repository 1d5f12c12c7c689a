"""The bridge's reconciler: asks are kept in the leases table until a run covered them, merge to
the earliest start, survive a failed run and a stopped bridge, and run outside the asker."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.pending_reconcile import PendingReconcile
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.settings import Settings
from agentstream.streams.reconcile import ReconcileReport, Reconciler

T1 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


async def wait_for(check: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout * 20)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_asks_merge_to_the_earliest_and_a_failed_run_is_tried_again(settings: Settings) -> None:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.leases])
        pending = PendingReconcile(ddb, settings.tables.leases)
        runs: list[datetime | None] = []
        release = asyncio.Event()

        async def run(since: datetime | None) -> ReconcileReport:
            runs.append(since)
            if len(runs) == 1:
                raise RuntimeError("Kafka away")
            await release.wait()
            return ReconcileReport()

        reconciler = Reconciler(run, pending, retry_s=0.05)
        await reconciler.request(T1)
        await reconciler.request(T2)  # earlier: wins
        await reconciler.request(T1)
        assert (await pending.get())[0] == "2026-12-01T09:00:00.000Z"
        stop = asyncio.Event()
        task = asyncio.create_task(reconciler.run(stop))
        await wait_for(lambda: len(runs) == 2)
        assert runs == [T2, T2], "the failed run is tried again with the same window"
        await reconciler.request(None)  # asked while a run is under way: a second run follows
        release.set()
        await wait_for(lambda: len(runs) == 3)
        assert runs[2] is None, "the whole table wins over any window"
        for _ in range(100):
            if await pending.get() is None:
                break
            await asyncio.sleep(0.05)
        assert await pending.get() is None, "covered: nothing left asked for"
        stop.set()
        await task


async def test_an_ask_left_by_a_stopped_bridge_is_run_by_the_next(settings: Settings) -> None:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.leases])
        await PendingReconcile(ddb, settings.tables.leases).ask("2026-12-01T08:00:00.000Z")
        runs: list[datetime | None] = []

        async def run(since: datetime | None) -> ReconcileReport:
            runs.append(since)
            return ReconcileReport()

        stop = asyncio.Event()
        task = asyncio.create_task(Reconciler(run, PendingReconcile(ddb, settings.tables.leases)).run(stop))
        await wait_for(lambda: runs)
        stop.set()
        await task
        assert runs == [datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)]
