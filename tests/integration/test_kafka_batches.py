"""Batched producing (the bridge's path) on the real broker: same partitions as send(), order kept."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from agentstream.bootstrap import setup
from agentstream.adapters.kafka.client import producer, send_keyed
from agentstream.settings import Settings
from tests.integration.kafka_helpers import read_topic


async def test_send_keyed_matches_send_placement_and_keeps_order(settings: Settings) -> None:
    await setup(settings, partitions=5)
    keys = [f"biz#user-{n}" for n in range(37)]
    kafka = producer(settings, max_batch_size=2048)  # a few records per batch: batches overflow
    await kafka.start()
    try:
        for key in keys:  # one record per key the ordinary way, to learn send()'s partition
            await kafka.send_and_wait(settings.topic_events, key=key.encode(), value=b'{"via":"send"}')
        records = [(key.encode(), f'{{"via":"batch","n":{n}}}'.encode()) for n in range(20) for key in keys]
        acks = await send_keyed(kafka, settings.topic_events, records)
        await asyncio.gather(*acks)
    finally:
        await kafka.stop()
    assert len(acks) > 5, "small batches must overflow into several per partition"
    got = await read_topic(settings.kafka_bootstrap_servers, settings.topic_events, len(keys) * 21)
    assert len(got) == len(keys) * 21
    placed = {r["key"]: r["partition"] for r in got if r["value"]["via"] == "send"}
    order: dict[str, list[int]] = defaultdict(list)
    for r in got:
        if r["value"]["via"] == "batch":
            assert r["partition"] == placed[r["key"]], "a key must land where send() puts it"
            order[r["key"]].append(r["value"]["n"])
    assert len(set(placed.values())) > 1
    assert all(ns == list(range(20)) for ns in order.values())


async def test_a_record_larger_than_a_batch_is_sent_not_dropped(settings: Settings) -> None:
    """DynamoDB items reach 400 KB; the producer's batches are 256 KB: such a record goes alone."""
    await setup(settings, partitions=1)
    big = b'{"content":"' + b"x" * 300_000 + b'"}'
    kafka = producer(settings)
    await kafka.start()
    try:
        acks = await send_keyed(kafka, settings.topic_events, [(b"s", b'{"n":1}'), (b"s", big), (b"s", b'{"n":3}')])
        await asyncio.gather(*acks)
    finally:
        await kafka.stop()
    got = await read_topic(settings.kafka_bootstrap_servers, settings.topic_events, 3)
    assert [len(r["value"].get("content", "")) or r["value"]["n"] for r in got] == [1, 300_000, 3]
