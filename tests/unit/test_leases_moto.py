"""Leases on moto's DynamoDB (fast tier): a named timer lease is held by one process at a time
and handed over on release or expiry; a shard lease taken by another is lost, never both held;
a worker takes the session timer's lease unless SESSION_TIMER_EVERY is 0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.settings import Settings
from agentstream.streams.expiry import LEASE as EXPIRY_LEASE
from agentstream.wiring import lease_table, session_timer
from agentstream.streams.leases import HeldLease, Lease, LeaseLost, LeaseTable


def table(ddb: Any, settings: Settings, owner: str, ttl_ms: int = 600_000) -> LeaseTable:
    return lease_table(ddb, settings.tables.leases, owner, ttl_ms)


async def test_a_named_lease_is_held_by_one_process_until_it_hands_it_back(moto_ddb: Any, moto_settings: Settings,
                                                                            biz: str) -> None:
    name = f"timer:{biz}"
    first, second = HeldLease(table(moto_ddb, moto_settings, "w1"), name), HeldLease(table(moto_ddb, moto_settings, "w2"), name)
    assert await first.hold() and await first.hold(), "taken, then renewed"
    assert not await second.hold(), "held elsewhere"
    assert (await table(moto_ddb, moto_settings, "probe").get(name)).owner == "w1"  # type: ignore[union-attr]
    await first.release()
    assert await second.hold(), "handed back: the other takes it at once"
    assert not await first.hold()
    await second.release()
    await second.release()  # nothing held: nothing to do
    row = await table(moto_ddb, moto_settings, "probe").get(name)
    assert row is not None and row.owner is None


async def test_an_expired_named_lease_is_taken_over_and_its_old_holder_lets_go(moto_ddb: Any, moto_settings: Settings,
                                                                               biz: str) -> None:
    name = f"timer:{biz}"
    lapsed = HeldLease(table(moto_ddb, moto_settings, "w1", ttl_ms=-60_000), name)  # expires as it is written
    assert await lapsed.hold()
    taker = HeldLease(table(moto_ddb, moto_settings, "w2"), name)
    assert await taker.hold(), "an expired lease is free"
    assert not await lapsed.hold(), "its renewal is refused: the lease was lost"
    await lapsed.release()
    assert (await table(moto_ddb, moto_settings, "probe").get(name)).owner == "w2"  # type: ignore[union-attr]


async def test_a_shard_lease_taken_by_another_is_lost(moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    shard = f"{biz}:shard-1"
    one, two = table(moto_ddb, moto_settings, "one", ttl_ms=-60_000), table(moto_ddb, moto_settings, "two")
    await one.register(shard, None)
    await one.register(shard, "ignored")  # registering again changes nothing
    row = await one.get(shard)
    assert row is not None and row.owner is None and row.parent is None
    mine = await one.acquire(row)
    assert mine is not None
    await one.checkpoint(mine, "seq-1", at="2026-05-01T10:00:00.000Z")
    assert await one.acquire(row) is None, "the counter moved: a stale copy takes nothing"
    theirs = await two.acquire(await two.get(shard))  # type: ignore[arg-type]
    assert theirs is not None and theirs.checkpoint == "seq-1"
    with pytest.raises(LeaseLost):
        await one.checkpoint(mine, "seq-2")
    await one.release(mine)  # not ours any more: left as it is
    current = await two.get(shard)
    assert current is not None and (current.owner, current.checkpoint) == ("two", "seq-1")
    await two.release(theirs)
    assert (await two.all())[shard].available(0) and isinstance((await two.all())[shard], Lease)
    await two.delete(shard)
    assert await two.get(shard) is None


class _Untouched:
    """A DynamoDB client that fails any call made on it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the timer called DynamoDB ({name})")


async def test_a_worker_runs_the_session_timer_under_its_lease_unless_told_not_to(moto_ddb: Any,
                                                                                   moto_settings: Settings) -> None:
    off, stop = moto_settings.model_copy(update={"session_timer_every_s": 0}), asyncio.Event()
    quiet = asyncio.create_task(session_timer(off, _Untouched(), EventStore(_Untouched(), "events"), stop))
    await asyncio.sleep(0.05)
    assert not quiet.done(), "SESSION_TIMER_EVERY=0: the worker runs no timer, and waits for its stop"
    stop.set()
    await quiet

    stop = asyncio.Event()
    store = EventStore(moto_ddb, moto_settings.tables.events)
    running = asyncio.create_task(session_timer(moto_settings, moto_ddb, store, stop))
    probe = table(moto_ddb, moto_settings, "probe")
    for _ in range(100):
        row = await probe.get(EXPIRY_LEASE)
        if row is not None and row.owner:
            break
        await asyncio.sleep(0.02)
    assert row is not None and row.owner and row.owner.startswith("worker-"), "the timer's first round takes the lease"
    stop.set()
    await running
    assert (await probe.get(EXPIRY_LEASE)).owner is None, "handed back on stop"  # type: ignore[union-attr]


class _CutShort:
    """The DynamoDB client; when armed, the next put lands but its answer never arrives (a
    shutdown cancels the bridge's shard reader in the middle of it)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb, self.armed = ddb, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)

    async def put_item(self, **kwargs: Any) -> Any:
        answer = await self._ddb.put_item(**kwargs)
        if self.armed:
            self.armed = False
            raise asyncio.CancelledError
        return answer


async def test_a_checkpoint_cut_short_by_a_shutdown_still_settles_and_hands_the_lease_back(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    """The checkpoint landed but the bridge never saw it: settling its last batch and handing
    the lease back still work, so another bridge takes the shard at once."""
    shard = f"{biz}:shard-1"
    ddb = _CutShort(moto_ddb)
    leases = lease_table(ddb, moto_settings.tables.leases, "bridge-1")
    await leases.register(shard, None)
    mine = await leases.acquire(await leases.get(shard))  # type: ignore[arg-type]
    assert mine is not None
    ddb.armed = True
    with pytest.raises(asyncio.CancelledError):
        await leases.checkpoint(mine, "seq-1")
    await leases.checkpoint(mine, "seq-2")  # the cancelled reader settles its last batch
    await leases.release(mine)
    row = await table(moto_ddb, moto_settings, "probe").get(shard)
    assert row is not None and row.owner is None and row.checkpoint == "seq-2"
    taken = await table(moto_ddb, moto_settings, "bridge-2").acquire(row)
    assert taken is not None and taken.checkpoint == "seq-2"
