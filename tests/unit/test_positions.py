"""The worker's saved positions: a partition's position is the first record not done (records
finish out of order), it carries the key and seq of the record before it, and it is saved only
when it moved; the store keeps one row per partition in the leases table (moto)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from hypothesis import given, strategies as st

from agentstream.adapters.kafka.client import event_headers
from agentstream.adapters.dynamo.position_store import Position, PositionStore
from agentstream.settings import Settings
from agentstream.streams.offsets import Offsets
from agentstream.streams.positions import PositionKeeper

TOPIC = "agent.events.v1"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class FakeStore:
    def __init__(self) -> None:
        self.saved: list[dict[int, Position]] = []

    async def save(self, topic: str, positions: dict[int, Position]) -> None:
        assert topic == TOPIC
        self.saved.append(dict(positions))


def keeper() -> tuple[PositionKeeper, FakeStore]:
    store = FakeStore()
    return PositionKeeper(store, TOPIC), store  # type: ignore[arg-type]


def take(k: PositionKeeper, tp: TopicPartition, offset: int, seq: int, key: bytes = b"biz#user") -> None:
    k.take(tp, offset, key, event_headers(seq, "MessageReceived"))


async def test_a_position_waits_for_the_first_record_not_done_and_names_the_record_before_it() -> None:
    k, store = keeper()
    for offset, seq in ((10, 1), (11, 2), (12, 3)):
        take(k, TP0, offset, seq)
    k.done(TP0, 12)
    await k.save()
    assert store.saved == [], "nothing before 12 is done"
    k.done(TP0, 10)
    await k.save()
    assert store.saved == [{0: Position(11, "biz#user", 1)}]
    k.done(TP0, 11)
    await k.save()
    await k.save()
    assert store.saved[1:] == [{0: Position(13, "biz#user", 3)}], "saved once it moved, not again"


async def test_a_record_without_a_key_and_seq_leaves_the_position_unsaved() -> None:
    k, store = keeper()
    take(k, TP0, 0, 1)
    k.take(TP1, 0, b"biz#user", None)  # a record from before the bridge put seq headers
    k.done(TP0, 0)
    k.done(TP1, 0)
    await k.save()
    assert store.saved == [{0: Position(1, "biz#user", 1)}]


async def test_a_revoked_partition_saves_nothing_that_finishes_after() -> None:
    k, store = keeper()
    take(k, TP0, 5, 1)
    take(k, TP1, 7, 1)
    k.revoked({TP1})
    k.done(TP0, 5)
    k.done(TP1, 7)  # a job of the revoked partition finishing late
    await k.save()
    assert store.saved == [{0: Position(6, "biz#user", 1)}]


@given(st.permutations(range(30)), st.integers(0, 30))
def test_the_position_is_the_first_offset_not_done_whatever_the_order(order: list[int], finished: int) -> None:
    offsets = Offsets()
    for offset in range(30):
        offsets.take(TP0, offset, ("k", offset))
    for offset in order[:finished]:
        offsets.done(TP0, offset)
    done = set(order[:finished])
    first_open = next((o for o in range(30) if o not in done), 30)
    moved = offsets.advanced()
    assert moved.get(TP0) == (first_open if first_open else None)
    assert offsets.marker(TP0) == (("k", first_open - 1) if first_open else None)


async def test_the_store_keeps_one_row_a_partition(moto_ddb: Any, moto_settings: Settings) -> None:
    store = PositionStore(moto_ddb, moto_settings.tables.leases, "worker")
    await store.save(TOPIC, {0: Position(5, "b#u", 2), 2: Position(9, "b#v", 4)})
    await store.save(TOPIC, {0: Position(8, "b#w", 1)})
    await store.save(TOPIC + "2", {1: Position(3, "b#x", 1)})  # a topic whose name starts the same
    assert await store.load(TOPIC) == {0: Position(8, "b#w", 1), 2: Position(9, "b#v", 4)}
    assert await PositionStore(moto_ddb, moto_settings.tables.leases, "other").load(TOPIC) == {}
    assert await store.load("another.topic") == {}
