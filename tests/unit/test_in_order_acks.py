"""The worker acks a partition's records in offset order: a held record (a burst's first, acked
only once its reply is in the log) is never passed by the ack of a later record, which would let
the consumer commit past it and a restarted worker never answer the burst."""

from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given, strategies as st

from agentstream.streams.offsets import InOrderAcks

TP0, TP1 = TopicPartition("events", 0), TopicPartition("events", 1)


def test_a_later_record_waits_for_the_held_one_before_it() -> None:
    acks = InOrderAcks()
    for offset in (10, 11, 12):
        acks.take(TP0, offset, f"r{offset}")
    assert acks.done(TP0, 11) == [] and acks.done(TP0, 12) == [], "the burst's first (10) is still held"
    assert acks.done(TP0, 10) == ["r10", "r11", "r12"]


def test_partitions_are_independent_and_a_revoked_one_releases_nothing() -> None:
    acks = InOrderAcks()
    acks.take(TP0, 0, "a0")
    acks.take(TP0, 1, "a1")
    acks.take(TP1, 5, "b5")
    assert acks.done(TP1, 5) == ["b5"]
    acks.forget([TP0])
    assert acks.done(TP0, 1) == [] and acks.done(TP0, 0) == [], "read again by the partition's next owner"


@given(st.permutations(range(12)), st.sets(st.integers(0, 11)))
def test_released_records_are_always_the_done_prefix_in_order(order: list[int], held: set[int]) -> None:
    acks = InOrderAcks()
    for offset in range(12):
        acks.take(TP0, offset, offset)
    released: list[int] = []
    for offset in [o for o in order if o not in held]:
        released += acks.done(TP0, offset)
        assert released == list(range(len(released))), "acked in offset order, no gap"
    first_held = min(held, default=12)
    assert released == list(range(first_held)), "nothing at or past a held record is acked"
