"""Bridge behaviour the local server cannot show (one shard that never closes), against a
scripted fake of the Streams API; leases live in the real local DynamoDB server."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from collections.abc import AsyncIterator

import pytest
from botocore.exceptions import EndpointConnectionError

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.settings import Settings
from agentstream.streams.bridge import Bridge, BridgeConfig, lease_key
from agentstream.streams.leases import LeaseTable
from agentstream.adapters.dynamo.lease_store import LeaseStore
from agentstream.wiring import lease_table
from tests.fakes.streams_api import FakeProducer, FakeStreams


@pytest.fixture
async def ddb(settings: Settings) -> AsyncIterator[object]:
    async with dynamodb_client(settings) as client:
        await ensure_tables(client, settings.tables, only=[settings.tables.leases])
        yield client


class CountedLeases(LeaseTable):
    """A bridge's lease table that counts its reads of every lease (two per discovery round)."""

    reads = 0

    async def all(self) -> dict:  # type: ignore[type-arg]
        self.reads += 1
        return await super().all()


def make_bridge(fake: FakeStreams, producer: FakeProducer, ddb: object, settings: Settings, owner: str,
                ttl_ms: int = 10_000, on_loss: object = None, leases: LeaseTable | None = None,
                recheck_s: float = 10.0) -> Bridge:
    config = BridgeConfig(fake.arn, "events", idle_poll_s=0.01, discover_every_s=0.05, recheck_s=recheck_s)
    leases = leases or lease_table(ddb, settings.tables.leases, owner, ttl_ms)  # type: ignore[arg-type]
    return Bridge(fake, producer, leases, config, on_loss)  # type: ignore[arg-type]


async def until(condition: object, timeout: float = 60.0) -> None:
    """Wait for `condition()` (a generous timeout: the machine may be busy); fail if it never holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def published(producer: FakeProducer) -> list[str]:
    return [json.loads(v)["eventId"] for _, _, v in producer.sent]


async def run_until(bridge: Bridge, condition: object, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.02)
    stop.set()
    await task


async def test_parent_is_read_to_its_end_before_its_children(ddb: object, settings: Settings) -> None:
    fake, producer = FakeStreams(), FakeProducer()
    parent = fake.add_shard("shard-A")
    for seq in range(1, 4):
        fake.put("shard-A", "b#u1", seq)
    # children become visible while the parent still has records to read
    fake.add_shard("shard-B", parent="shard-A")
    fake.add_shard("shard-C", parent="shard-A")
    for seq in range(1, 3):
        fake.put("shard-B", "b#u2", seq)
        fake.put("shard-C", "b#u3", seq)
    fake.put("shard-A", "b#u1", 4)
    parent.closed = True
    bridge = make_bridge(fake, producer, ddb, settings, "one")
    await run_until(bridge, lambda: len(producer.sent) == 8)
    ids = published(producer)
    assert len(ids) == 8
    last_parent = max(ids.index(f"b#u1-{s}") for s in range(1, 5))
    first_child = min(ids.index(i) for i in ids if not i.startswith("b#u1"))
    assert last_parent < first_child
    leases = await lease_table(ddb, settings.tables.leases, "x").all()  # type: ignore[arg-type]
    assert leases[lease_key(fake.arn, "shard-A")].finished


async def test_expired_iterator_resumes_from_checkpoint_without_loss(ddb: object, settings: Settings) -> None:
    fake, producer = FakeStreams(), FakeProducer()
    fake.add_shard("s1")
    for seq in range(1, 6):
        fake.put("s1", "b#u", seq)
    bridge = make_bridge(fake, producer, ddb, settings, "one")
    fake.expire_next.add("s1")
    await run_until(bridge, lambda: len(producer.sent) >= 5)
    assert published(producer) == [f"b#u-{s}" for s in range(1, 6)]


async def test_trimmed_checkpoint_starts_at_trim_horizon_and_reconciles(ddb: object, settings: Settings) -> None:
    fake, producer = FakeStreams(), FakeProducer()
    shard = fake.add_shard("s1")
    for seq in range(1, 6):
        fake.put("s1", "b#u", seq)
    leases = lease_table(ddb, settings.tables.leases, "setup")  # type: ignore[arg-type]
    key = lease_key(fake.arn, "s1")
    await leases.register(key, None)
    lease = await leases.acquire((await leases.all())[key])
    assert lease is not None
    await leases.checkpoint(lease, shard.records[1]["dynamodb"]["SequenceNumber"], at="2026-12-01T10:00:00.000Z")
    await leases.release(lease)
    shard.trimmed_before = 3  # the stream dropped the first three records
    losses: list[tuple[str, datetime | None]] = []

    async def on_loss(why: str, since: datetime | None) -> None:
        losses.append((why, since))

    bridge = make_bridge(fake, producer, ddb, settings, "one", on_loss=on_loss)
    await run_until(bridge, lambda: len(producer.sent) >= 2)
    assert published(producer) == ["b#u-4", "b#u-5"]
    assert losses and "no longer readable" in losses[0][0]
    assert losses[0][1] == datetime(2026, 12, 1, 9, 50, tzinfo=timezone.utc), "the lost window: the checkpoint's time less the margin"


@pytest.mark.parametrize("after", [3, 8], ids=["fewer-than-read-before", "more-than-read-before"])
@pytest.mark.parametrize("empty_at_start", [False, True], ids=["records-at-start", "empty-at-start"])
async def test_a_restarted_stream_behind_a_live_iterator_is_found_and_reconciled(ddb: object, settings: Settings,
                                                                                  after: int, empty_at_start: bool) -> None:
    fake, producer = FakeStreams(), FakeProducer()
    fake.add_shard("s1")
    losses: list[datetime | None] = []

    async def on_loss(why: str, since: datetime | None) -> None:
        losses.append(since)

    bridge = make_bridge(fake, producer, ddb, settings, "one", on_loss=on_loss, recheck_s=0.5)
    stop = asyncio.Event()
    if not empty_at_start:
        for seq in range(1, 6):
            fake.put("s1", "b#u", seq)
    task = asyncio.create_task(bridge.run(stop))
    try:
        if empty_at_start:  # the bridge reads an empty stream, then the load begins
            await until(lambda: ("get_records", "s1") in fake.calls)
            for seq in range(1, 6):
                fake.put("s1", "b#u", seq)
        await until(lambda: len(producer.sent) == 5)
        fake.restart()
        for seq in range(6, 6 + after):  # appended once the server is back: positions 0, 1... of the new stream
            fake.put("s1", "b#u", seq)
        await until(lambda: {f"b#u-{s}" for s in range(1, 6 + after)} <= set(published(producer)))
    finally:
        stop.set()
        await task
    # every event (some twice, some after later ones of the restarted stream: the worker skips
    # what it applied and reads a gap from the log)
    assert set(published(producer)) == {f"b#u-{s}" for s in range(1, 6 + after)}
    assert len(losses) == 1 and losses[0] is not None, "the lost window is asked for from the last good check's time"


@pytest.mark.soak
async def test_two_bridges_share_shards_and_take_over_from_a_dead_one(ddb: object, settings: Settings) -> None:
    fake = FakeStreams()
    for n in range(4):
        fake.add_shard(f"s{n}")
        fake.put(f"s{n}", f"b#u{n}", 1)
    p1, p2 = FakeProducer(), FakeProducer()
    ttl_ms = 3_000  # renewed well within it even on a busy machine; a dead holder's leases free up after it
    b1 = make_bridge(fake, p1, ddb, settings, "one", ttl_ms=ttl_ms)
    stop1 = asyncio.Event()
    t1 = asyncio.create_task(b1.run(stop1))
    await until(lambda: len(p1.sent) == 4 and len(b1.stats.shards) == 4)
    watched = CountedLeases(LeaseStore(ddb, settings.tables.leases), "two", ttl_ms)
    b2 = make_bridge(fake, p2, ddb, settings, "two", leases=watched)
    stop2 = asyncio.Event()
    t2 = asyncio.create_task(b2.run(stop2))
    await until(lambda: watched.reads >= 6)  # three discovery rounds of bridge two while one holds every lease
    assert len(p1.sent) == 4 and p2.sent == [] and b2.stats.shards == set(), "every shard is read by exactly one bridge"
    t1.cancel()  # bridge one goes away; bridge two must pick up its shards
    await asyncio.gather(t1, return_exceptions=True)
    for n in range(4):
        fake.put(f"s{n}", f"b#u{n}", 2)
    await until(lambda: len(p2.sent) >= 4)
    stop2.set()
    await t2
    assert sorted(published(p2)) == sorted(f"b#u{n}-2" for n in range(4))


async def test_a_stopping_bridge_hands_back_a_lease_whose_last_checkpoint_it_did_not_see(ddb: object, settings: Settings) -> None:
    """Shutdown cancelled a checkpoint after DynamoDB had taken it: the bridge's copy of the
    lease is one counter behind, and the lease is still handed back (not left to expire)."""
    leases = lease_table(ddb, settings.tables.leases, "one")  # type: ignore[arg-type]
    await leases.register("shard-x", None)
    lease = await leases.acquire((await leases.all())["shard-x"])
    assert lease is not None
    landed = await leases.get("shard-x")
    await leases.checkpoint(landed, "0042")  # the write that landed; `lease` never saw it
    await leases.release(lease)
    row = await leases.get("shard-x")
    assert row is not None and row.owner is None and row.checkpoint == "0042"
    other = await lease_table(ddb, settings.tables.leases, "two").acquire(row)  # type: ignore[arg-type]
    assert other is not None and other.owner == "two", "another bridge takes it at once"


async def test_an_idle_shard_is_read_less_often_and_a_record_brings_the_pace_back(ddb: object, settings: Settings) -> None:
    fake, producer = FakeStreams(), FakeProducer()
    fake.add_shard("s1")
    bridge = make_bridge(fake, producer, ddb, settings, "one")  # idle_poll_s 0.01; at most 0.25 s
    waits = [bridge._idle_wait("s1") for _ in range(8)]  # noqa: SLF001 - the waits after eight empty reads
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25, 0.25]
    fake.put("s1", "b#u", 1)
    iterator = (await fake.get_shard_iterator(fake.arn, "s1", "TRIM_HORIZON"))["ShardIterator"]
    _, inflight = await bridge._read_batch(None, "s1", iterator, None)  # type: ignore[arg-type]  # noqa: SLF001
    assert inflight is not None and inflight.events == 1
    assert bridge._idle_wait("s1") == 0.01, "a read with records brings the pace back"  # noqa: SLF001



class Outage:
    """The local server stopped: every call of the Streams API and of the lease table is refused."""

    down = False

    def check(self) -> None:
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")


class StreamsBehind(FakeStreams):
    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    async def describe_stream(self, StreamArn: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
        self.outage.check()
        return await super().describe_stream(StreamArn, **kwargs)

    async def get_shard_iterator(self, **kwargs: object) -> dict:  # type: ignore[type-arg]
        self.outage.check()
        return await super().get_shard_iterator(**kwargs)  # type: ignore[arg-type]

    async def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict:  # type: ignore[type-arg]
        self.outage.check()
        return await super().get_records(ShardIterator, Limit)


class RowsBehind:
    """The lease table's rows, refused while the server is down."""

    def __init__(self, rows: LeaseStore, outage: Outage) -> None:
        self._rows, self._outage = rows, outage

    def __getattr__(self, name: str) -> object:
        method = getattr(self._rows, name)

        async def call(*args: object, **kwargs: object) -> object:
            self._outage.check()
            return await method(*args, **kwargs)

        return call


async def test_the_bridge_waits_out_its_server_restarting_and_reads_what_comes_after(ddb: object, settings: Settings) -> None:
    """The server down for longer than a lease (every call refused) and back with the stream's
    records gone: the bridge does not exit; it takes the shard again and publishes every event."""
    outage = Outage()
    fake, producer = StreamsBehind(outage), FakeProducer()
    fake.add_shard("s1")
    losses: list[datetime | None] = []

    async def on_loss(why: str, since: datetime | None) -> None:
        losses.append(since)

    leases = LeaseTable(RowsBehind(LeaseStore(ddb, settings.tables.leases), outage), "one", 600)  # type: ignore[arg-type]
    bridge = make_bridge(fake, producer, ddb, settings, "one", on_loss=on_loss, leases=leases, recheck_s=0.5)
    stop = asyncio.Event()
    for seq in range(1, 4):
        fake.put("s1", "b#u", seq)
    task = asyncio.create_task(bridge.run(stop))
    try:
        await until(lambda: len(producer.sent) == 3)
        outage.down = True
        await asyncio.sleep(1.5)  # discovery rounds and the lease's expiry pass while it is down
        assert not task.done(), "the bridge exited while its server was down"
        fake.restart()
        outage.down = False
        for seq in range(4, 7):
            fake.put("s1", "b#u", seq)
        await until(lambda: {f"b#u-{s}" for s in range(1, 7)} <= set(published(producer)))
    finally:
        stop.set()
        await task
    assert losses, "the restarted stream's lost window is asked for"
