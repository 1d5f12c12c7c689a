"""`agentstream status`: topic sizes, consumer lag, DLQ size and bridge leases, for a person."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.kafka import topics
from agentstream.settings import Settings
from agentstream.streams.leases import LeaseTable, now_ms


async def _end_offsets(settings: Settings, names: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or set())]
        if not parts:
            await consumer.topics()
            parts = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or set())]
        return await consumer.end_offsets(parts) if parts else {}
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
