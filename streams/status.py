"""`agentstream status`: topic sizes, consumer lag, DLQ size and bridge leases, for a person;
the same lag and DLQ figures as /metrics gauges (`export_lag`, run by the gateway)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream import metrics
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.kafka import partitions_of, topics
from agentstream.settings import Settings
from agentstream.streams.leases import LeaseTable, now_ms

log = structlog.get_logger(__name__)


async def _end_offsets(settings: Settings, names: list[str]) -> dict[TopicPartition, int]:
    parts = []
    for name in names:
        try:
            parts += [TopicPartition(name, p) for p in await partitions_of(settings.kafka_bootstrap_servers, name)]
        except LookupError:
            pass
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets(parts)
    finally:
        await consumer.stop()


async def _group_lag(settings: Settings, group: str, ends: dict[TopicPartition, int], topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    if not committed:
        return None
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items() if tp.topic == topic)


async def collect(settings: Settings) -> dict[str, Any]:
    ends = await _end_offsets(settings, topics(settings))
    sizes = {t: sum(v for tp, v in ends.items() if tp.topic == t) for t in topics(settings)}
    status: dict[str, Any] = {
        "topics": sizes,
        "dlqSize": sizes.get(settings.topic_dlq, 0),
        "workerLag": await _group_lag(settings, settings.worker_group, ends, settings.topic_events),
        "deliveryLag": await _group_lag(settings, settings.delivery_group, ends, settings.topic_replies),
    }
    async with dynamodb_client(settings) as ddb:
        leases = await LeaseTable(ddb, settings.tables.leases, "status").all()
    status["bridgeShards"] = [
        {"shard": k.split("|")[-1], "owner": v.owner, "alive": bool(v.owner) and v.expires_at > now_ms(),
         "finished": v.finished, "checkpoint": v.checkpoint}
        for k, v in leases.items()
    ]
    return status


async def export_lag(settings: Settings, stop: asyncio.Event, every_s: float = 15.0) -> None:
    """Keep the consumer-lag and DLQ-size gauges of /metrics current until `stop`."""
    while not stop.is_set():
        try:
            ends = await _end_offsets(settings, topics(settings))
            metrics.DLQ_SIZE.set(sum(v for tp, v in ends.items() if tp.topic == settings.topic_dlq))
            for group, topic in ((settings.worker_group, settings.topic_events), (settings.delivery_group, settings.topic_replies)):
                lag = await _group_lag(settings, group, ends, topic)
                if lag is not None:
                    metrics.CONSUMER_LAG.labels(group=group, topic=topic).set(lag)
        except Exception as exc:  # metrics must never take the gateway down
            log.warning("status.lag_export_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except asyncio.TimeoutError:
            pass
