"""Kafka helpers: topic set-up, an idempotent acks=all producer, JSON (de)serialisation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from agentstream.settings import Settings


def dumps(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; integers past 64 bits (DynamoDB allows 38 digits) take the slow path."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def loads(raw: bytes | str) -> Any:
    """Parse JSON (the standard library: orjson would turn integers past 64 bits into floats)."""
    return json.loads(raw)


def event_headers(seq: int, event_type: str) -> list[tuple[str, bytes]]:
    """A logged event's record headers on `agent.events.v1`: its seq and type, so a consumer can
    tell an event it has applied from the record's key and these, without parsing it."""
    return [("seq", str(seq).encode()), ("type", event_type.encode())]


FIRST_PUBLICATION = ("first", b"1")  # on `agent.replies.v1`: a reply published the first time, just logged


def first_publication(headers: Any) -> bool:
    """Whether a reply's record says it is the reply's first publication (see `FIRST_PUBLICATION`)."""
    try:
        return dict(headers or ()).get(FIRST_PUBLICATION[0]) == FIRST_PUBLICATION[1]
    except (TypeError, ValueError):
        return False


def seq_of(headers: Any) -> tuple[int, str] | None:
    """(seq, type) from a record's headers (pairs or a mapping); None when absent or unreadable."""
    try:
        found = dict(headers or ())
        return int(found["seq"]), bytes(found["type"]).decode()
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        return None


async def send_keyed(producer: AIOKafkaProducer, topic: str,
                     records: Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, list[tuple[str, bytes]]]]
                     ) -> list[asyncio.Future[Any]]:
    """Hand (key, value) or (key, value, headers) records to the producer as one batch per
    partition, in order.

    Partitions are chosen as `send()` chooses them (murmur2 of the key, like the Java client), and
    batches of a partition are queued in order, so per-key order is kept. Much cheaper than one
    `send()` per record. Returns the batches' acknowledgements."""
    partitions = sorted(await producer.partitions_for(topic))
    partition_of = DefaultPartitioner()
    open_batches: dict[int, Any] = {}
    acks: list[asyncio.Future[Any]] = []
    for key, value, *rest in records:
        headers = rest[0] if rest else []
        partition = partition_of(key, partitions, partitions)
        batch = open_batches.get(partition)
        if batch is None or batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if batch is not None:  # full: queue it and start the next one
                acks.append(await producer.send_batch(batch, topic, partition=partition))
            batch = open_batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:  # an empty batch takes any one record
                raise ValueError(f"a record of {len(value)} bytes did not fit an empty Kafka batch")
    for partition, batch in open_batches.items():
        acks.append(await producer.send_batch(batch, topic, partition=partition))
    return acks


SIGNALS_RETENTION_MS = str(10 * 60 * 1000)


def topics(settings: Settings) -> list[str]:
    """Every topic of the product, the one list: `setup` creates these,
    `status` sizes them, `forget` reports how long each keeps an erased customer's records. A
    new topic is added here."""
    return [settings.topic_events, settings.topic_replies, settings.topic_dlq, settings.topic_shadow,
            settings.topic_handoffs, settings.topic_signals]


async def topic_configs(bootstrap: str, names: list[str], keys: tuple[str, ...]) -> dict[str, dict[str, str] | None]:
    """The named configs of each topic as the broker applies them (the topic's own value or the
    broker's default), one DescribeConfigs request; None for a topic that does not exist."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, dict.fromkeys(keys)) for n in names])
    finally:
        await admin.close()
    found: dict[str, dict[str, str] | None] = dict.fromkeys(names)
    for answer in answers:
        for resource in answer.to_object()["resources"]:
            if not resource["error_code"]:
                found[resource["resource_name"]] = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    return found


class TopicMissing(LookupError):
    """A topic the process needs does not exist: `agentstream setup` creates it."""


async def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create the contract's topics that are missing; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics(settings) if t not in existing]
        count = partitions or settings.kafka_partitions
        short = {settings.topic_signals: {"retention.ms": SIGNALS_RETENTION_MS}}  # signals matter for seconds
        new = [NewTopic(t, num_partitions=count, replication_factor=1, topic_configs=short.get(t, {})) for t in wanted]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return wanted
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, names: list[str]) -> dict[str, list[int]]:
    """The partition numbers of each of the topics that exist (one request for all of them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"]: sorted(p["partition"] for p in d["partitions"])
            for d in described if not d.get("error_code") and d.get("partitions")}


# How old the cluster's metadata (brokers, partition leaders) may get before a client asks again.
# aiokafka's default is 5 minutes, and a client whose view went stale in a broker restart waited
# that long before fetching again (two of three restarts under load); 30 s bounds it.
METADATA_MAX_AGE_MS = 30_000


class KafkaClients:
    """The consumer factory of one cluster: built by the bootstrap, handed to the processes that
    read Kafka, so that they name topics and groups but never an address."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def consumer(self, *names: str, **options: Any) -> Any:
        """An AIOKafkaConsumer (not started) of this cluster."""
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(*names, bootstrap_servers=self.bootstrap, **({"metadata_max_age_ms": METADATA_MAX_AGE_MS} | options))

    def admin(self, **options: Any) -> AIOKafkaAdminClient:
        """An admin client (not started) of this cluster."""
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **options)

    async def partitions_of(self, names: list[str]) -> dict[str, list[int]]:
        return await partitions_of(self.bootstrap, names)

    async def topic_configs(self, names: list[str], keys: tuple[str, ...]) -> dict[str, dict[str, str] | None]:
        return await topic_configs(self.bootstrap, names, keys)


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """Idempotent producer with acks=all; keys and values are bytes."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
    }
    return AIOKafkaProducer(**(options | overrides))


async def follow(settings: Settings, topic: str, from_beginning: bool, stop: asyncio.Event) -> None:
    """Print each record of a topic as one JSON line until stopped (own throwaway group)."""
    import sys

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    sys.stdout.write(r.value.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
