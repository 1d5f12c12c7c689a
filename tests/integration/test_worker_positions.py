"""The worker's saved positions on the real Kafka and ministack: a consumer group with no
offsets (a new group, or offsets reset) is moved to the saved positions before the worker
joins it, but only where the record before a position is the one saved with it (a recreated
topic is read from its start), never backwards, and never under a group's running members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agentstream.bootstrap import setup
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.kafka.client import event_headers, producer
from agentstream.adapters.dynamo.position_store import Position, PositionStore
from agentstream.settings import Settings
from agentstream.adapters.kafka.client import KafkaClients
from agentstream.streams.positions import resume_group

pytestmark = pytest.mark.integration
PARTITIONS = 3


@pytest.fixture
async def logged(settings: Settings) -> AsyncIterator[tuple[PositionStore, dict[int, list[tuple[int, str, int]]]]]:
    """The events topic with 5 records a partition (key, seq headers), and the position store;
    yields the store and, per partition, the (offset, key, seq) of each record."""
    await setup(settings, partitions=PARTITIONS)
    kafka = producer(settings)
    await kafka.start()
    records: dict[int, list[tuple[int, str, int]]] = {p: [] for p in range(PARTITIONS)}
    try:
        for seq in range(1, 6):
            for partition in range(PARTITIONS):
                key = f"biz#user{partition}"
                meta = await kafka.send_and_wait(settings.topic_events, key=key.encode(), value=b"{}", partition=partition,
                                                 headers=event_headers(seq, "MessageReceived"))
                records[partition].append((meta.offset, key, seq))
    finally:
        await kafka.stop()
    async with dynamodb_client(settings) as ddb:
        yield PositionStore(ddb, settings.tables.leases, "worker"), records


async def committed(settings: Settings) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.worker_group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(settings.topic_events, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


def after(record: tuple[int, str, int]) -> Position:
    """The position right after `record`."""
    offset, key, seq = record
    return Position(offset + 1, key, seq)


async def test_a_group_without_offsets_starts_at_the_saved_positions(settings: Settings, logged: Any) -> None:
    store, records = logged
    await store.save(settings.topic_events, {0: after(records[0][3]), 1: after(records[1][4])})
    moved = await resume_group(KafkaClients(settings.kafka_bootstrap_servers), settings.worker_group, settings.topic_events, store)
    assert moved == {0: records[0][3][0] + 1, 1: records[1][4][0] + 1}
    assert await committed(settings) == {0: records[0][3][0] + 1, 1: records[1][4][0] + 1, 2: None}


async def test_a_position_whose_record_is_another_is_not_used(settings: Settings, logged: Any) -> None:
    store, records = logged
    offset, key, seq = records[0][2]
    await store.save(settings.topic_events, {0: Position(offset + 1, key, seq + 1),  # as on a recreated topic
                                             1: Position(records[1][2][0] + 1, "biz#someone-else", records[1][2][2]),
                                             2: Position(99, records[2][4][1], 5)})  # beyond the topic's end
    assert await resume_group(KafkaClients(settings.kafka_bootstrap_servers), settings.worker_group, settings.topic_events, store) == {}
    assert await committed(settings) == {0: None, 1: None, 2: None}


async def test_a_group_ahead_of_the_saved_position_stays_where_it_is(settings: Settings, logged: Any) -> None:
    store, records = logged
    await store.save(settings.topic_events, {0: after(records[0][4])})
    assert await resume_group(KafkaClients(settings.kafka_bootstrap_servers), settings.worker_group, settings.topic_events, store) == {0: records[0][4][0] + 1}
    await store.save(settings.topic_events, {0: after(records[0][1])})  # an older save, written late
    assert await resume_group(KafkaClients(settings.kafka_bootstrap_servers), settings.worker_group, settings.topic_events, store) == {}
    assert (await committed(settings))[0] == records[0][4][0] + 1


async def test_a_group_with_a_running_member_is_left_alone(settings: Settings, logged: Any) -> None:
    store, records = logged
    await store.save(settings.topic_events, {0: after(records[0][4])})
    member = AIOKafkaConsumer(settings.topic_events, bootstrap_servers=settings.kafka_bootstrap_servers,
                              group_id=settings.worker_group, enable_auto_commit=False, auto_offset_reset="earliest")
    await member.start()
    try:
        await member.getmany(timeout_ms=3000)  # joined: the group has a member
        assert await resume_group(KafkaClients(settings.kafka_bootstrap_servers), settings.worker_group, settings.topic_events, store) == {}
    finally:
        await member.stop()
    assert await committed(settings) == {0: None, 1: None, 2: None}
