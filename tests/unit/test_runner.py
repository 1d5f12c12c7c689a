"""The one consumer loop (streams/runner.py) on an in-memory consumer: order per key, concurrency
across keys, retries then the dead letter, bad records, an unknown event pausing, a loop that dies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from agentstream.events import UnknownSchemaVersion
from agentstream.streams.runner import ConsumerRunner, Failure, RetryPolicy
from agentstream.streams.stopping import UpgradeNeeded

TOPIC = "replies"
FAST = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.001, wait_jitter=0.0, timeout=30.0)


class FakeConsumer:
    """Serves the records given, a few per poll, and keeps what was committed."""

    def __init__(self, records: list[tuple[int, str, bytes]], per_poll: int = 3) -> None:
        self.records: dict[TopicPartition, list[Any]] = {}
        for partition, key, value in records:
            tp = TopicPartition(TOPIC, partition)
            batch = self.records.setdefault(tp, [])
            batch.append(SimpleNamespace(topic=TOPIC, partition=partition, offset=len(batch), key=key.encode(), value=value))
        self.served = dict.fromkeys(self.records, 0)
        self.per_poll = per_poll
        self.committed: dict[TopicPartition, int] = {}

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0)
        out = {}
        for tp, records in self.records.items():
            start = self.served[tp]
            if start < len(records):
                out[tp] = records[start:start + self.per_poll]
                self.served[tp] = start + len(out[tp])
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def committed_to_end(self) -> bool:
        return all(self.committed.get(tp) == len(records) for tp, records in self.records.items())


def rec(key: str, n: int, **extra: Any) -> bytes:
    return json.dumps({"key": key, "n": n, **extra}).encode()


def parse(record: Any) -> dict[str, Any]:
    item = json.loads(record.value)
    if item.get("schemaVersion", 1) > 1:
        raise UnknownSchemaVersion(f"event {item['n']} has schemaVersion {item['schemaVersion']}: upgrade")
    return item


class Harness:
    def __init__(self, consumer: FakeConsumer, handle: Callable[[dict[str, Any], int], Awaitable[None]],
                 dead_letter: Callable[[Failure[Any]], Awaitable[None]] | None = None, **options: Any) -> None:
        self.dead: list[Failure[Any]] = []

        async def keep(failure: Failure[Any]) -> None:
            self.dead.append(failure)

        self.consumer = consumer
        self.runner = ConsumerRunner(consumer, "test", parse, handle, dead_letter or keep, policy=FAST, **options)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.runner.run(self.stop))

    async def until(self, condition: Callable[[], bool]) -> None:
        for _ in range(10_000):  # a guard against a hang, not a timing
            if condition() or self.task.done():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("never happened")

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def test_order_per_key_and_other_keys_not_held_behind_a_slow_one() -> None:
    records = [(0, "slow", rec("slow", 1)), (0, "slow", rec("slow", 2)), (0, "slow", rec("slow", 3))]
    records += [(i % 2, f"k{i}", rec(f"k{i}", i)) for i in range(6)] + [(0, "k0", rec("k0", 60))]
    release = asyncio.Event()
    seen: list[tuple[str, int]] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        if item["key"] == "slow" and item["n"] == 1:
            await release.wait()  # held until every other key is done
        seen.append((item["key"], item["n"]))

    h = Harness(FakeConsumer(records), handle)
    await h.until(lambda: len(seen) == 7)
    assert all(k != "slow" for k, _ in seen), "the other conversations went on while one waited"
    assert not h.consumer.committed_to_end()  # the slow record holds the commit, not the others
    release.set()
    await h.until(h.consumer.committed_to_end)
    await h.finish()
    assert [n for k, n in seen if k == "slow"] == [1, 2, 3]
    assert [n for k, n in seen if k == "k0"] == [0, 60]
    assert h.consumer.committed_to_end() and not h.dead


async def test_a_failing_record_is_retried_then_dead_lettered_and_the_rest_goes_on() -> None:
    records = [(0, "a", rec("a", 1)), (0, "a", rec("a", 2)), (0, "b", rec("b", 3)), (1, "c", rec("c", 4))]
    tries: dict[int, int] = {}
    handled: list[int] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        tries[item["n"]] = attempt
        if item["n"] == 1:
            raise ConnectionError("vendor down")
        if item["n"] == 4 and attempt == 1:
            raise ConnectionError("once")
        handled.append(item["n"])

    h = Harness(FakeConsumer(records), handle)
    await h.until(h.consumer.committed_to_end)
    await h.finish()
    assert tries[1] == 3 and [(f.stage, f.attempts, f.item["n"]) for f in h.dead] == [("test", 3, 1)]
    assert h.dead[0].error == "ConnectionError: vendor down"
    assert sorted(handled) == [2, 3, 4] and tries[4] == 2
    assert h.consumer.committed_to_end()


async def test_a_permanent_error_is_not_retried() -> None:
    class Refused(Exception):
        pass

    tries: list[int] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        tries.append(attempt)
        raise Refused("400 bad number")

    h = Harness(FakeConsumer([(0, "a", rec("a", 1))]), handle, permanent=(Refused,))
    await h.until(h.consumer.committed_to_end)
    await h.finish()
    assert tries == [1] and [f.attempts for f in h.dead] == [1]


async def test_bad_records_are_dead_lettered_and_never_end_the_loop() -> None:
    records = [(0, "a", b"not json"), (0, "a", rec("a", 1)), (0, "b", b'{"no": "key"}'), (0, "b", rec("b", 2)),
               (1, "c", b"\xff\xfe")]
    handled: list[int] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        handled.append(item["n"])  # {"no": "key"} fails here with KeyError: retried, then dead-lettered

    h = Harness(FakeConsumer(records), handle)
    await h.until(h.consumer.committed_to_end)
    await h.finish()
    assert sorted(handled) == [1, 2]
    assert sorted((f.stage, f.record.offset, f.record.partition) for f in h.dead) == [
        ("parse", 0, 0), ("parse", 0, 1), ("test", 2, 0)]
    assert not h.task.exception()


async def test_an_unknown_event_pauses_the_loop_and_is_never_committed_nor_dead_lettered() -> None:
    records = [(0, "a", rec("a", 1)), (0, "b", rec("b", 2)), (0, "a", rec("a", 3, schemaVersion=9)),
               (0, "a", rec("a", 4)), (0, "b", rec("b", 5)), (1, "c", rec("c", 6))]
    handled: list[int] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        handled.append(item["n"])

    h = Harness(FakeConsumer(records, per_poll=10), handle)
    with pytest.raises(UpgradeNeeded, match="schemaVersion 9"):
        await asyncio.wait_for(h.task, 30)
    assert 3 not in handled and 4 not in handled and not h.dead
    assert h.consumer.committed.get(TopicPartition(TOPIC, 0), 0) <= 2  # never past the unknown event
    assert h.runner.upgrade_needed and "schemaVersion 9" in h.runner.upgrade_needed


async def test_an_unknown_event_met_while_handling_pauses_that_conversation() -> None:
    records = [(0, "a", rec("a", 1)), (0, "a", rec("a", 2)), (0, "b", rec("b", 3))]
    handled: list[int] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        if item["n"] == 1:
            raise UnknownSchemaVersion("the log behind it holds schemaVersion 7: upgrade")
        handled.append(item["n"])

    h = Harness(FakeConsumer(records, per_poll=10), handle)
    with pytest.raises(UpgradeNeeded, match="schemaVersion 7"):
        await asyncio.wait_for(h.task, 30)
    assert handled == [3] and not h.dead  # a's next reply never overtakes the paused one
    assert h.consumer.committed.get(TopicPartition(TOPIC, 0), 0) == 0


async def test_a_dead_letter_that_cannot_be_written_ends_the_loop_with_its_error() -> None:
    async def handle(item: dict[str, Any], attempt: int) -> None:
        raise ConnectionError("vendor down")

    async def broken_dlq(failure: Failure[Any]) -> None:
        raise RuntimeError("kafka unreachable")

    h = Harness(FakeConsumer([(0, "a", rec("a", 1)), (0, "a", rec("a", 2))]), handle, dead_letter=broken_dlq)
    with pytest.raises(RuntimeError, match="kafka unreachable"):
        await asyncio.wait_for(h.task, 30)
    assert not h.consumer.committed.get(TopicPartition(TOPIC, 0))


async def test_a_revoked_partition_finishes_what_runs_and_leaves_the_queue_to_the_new_owner() -> None:
    """A rebalance waits for the records being handled, not for the partition's whole queue
    (which could outlast the rebalance and let two processes send the same reply)."""
    records = [(0, "a", rec("a", n)) for n in range(5)] + [(1, "b", rec("b", 1))]
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, int]] = []

    async def handle(item: dict[str, Any], attempt: int) -> None:
        if item == {"key": "a", "n": 0}:
            started.set()
            await release.wait()
        seen.append((item["key"], item["n"]))

    h = Harness(FakeConsumer(records, per_poll=10), handle)
    await started.wait()
    await h.until(lambda: ("b", 1) in seen)
    handing = asyncio.create_task(h.runner.hand_back({TopicPartition(TOPIC, 0)}))
    await asyncio.sleep(0.05)
    assert not handing.done(), "the running record is finished first"
    release.set()
    await asyncio.wait_for(handing, 10)
    assert h.consumer.committed[TopicPartition(TOPIC, 0)] == 1, "committed up to the record that ran"
    await h.finish()
    assert [n for k, n in seen if k == "a"] == [0], "the queued records were left for the new owner"
