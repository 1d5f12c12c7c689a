"""Writing records onto a topic and reading a topic to the end, in tests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from agentstream.adapters.kafka.client import dumps, producer
from agentstream.events import Event
from agentstream.settings import Settings


async def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every record of a topic from the beginning, waiting until `expect` records arrived."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend({"key": r.key.decode() if r.key else None, "partition": r.partition,
                                "offset": r.offset, "value": json.loads(r.value),
                                "headers": {k: v.decode() for k, v in r.headers or ()}} for r in batch)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records


def as_records(events: list[Event]) -> list[tuple[str, bytes]]:
    """Events as the bridge puts them on agent.events.v1: (streamId, JSON)."""
    return [(e.streamId, dumps(e.to_json_dict())) for e in events]


async def publish(settings: Settings, records: list[tuple[str, bytes]]) -> None:
    """(key, value) records onto agent.events.v1 in order, as the bridge would put them there."""
    kafka = producer(settings)
    await kafka.start()
    try:
        for key, value in records:
            await kafka.send_and_wait(settings.topic_events, key=key.encode(), value=value)
    finally:
        await kafka.stop()
