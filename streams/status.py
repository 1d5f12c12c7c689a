"""`agentstream status`: topic sizes, consumer lag, DLQ size, bridge leases and Gmail watch
expiries, for a person; the same lag and DLQ figures as /metrics gauges (`export_lag`, run by
the gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream import metrics
from agentstream.adapters.dynamo.credentials import CredentialsError, CredentialStore
from agentstream.adapters.kafka.client import KafkaClients
from agentstream.adapters.owner_webhook import webhook_statuses
from agentstream.streams.gmail_watch import watch_expiries
from agentstream.streams.leases import LeaseTable, now_ms
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Watched:
    """The topics and groups the figures are of."""

    topics: list[str]
    dlq: str
    events: str
    replies: str
    worker_group: str
    delivery_group: str


async def _end_offsets(kafka: KafkaClients, names: list[str]) -> dict[TopicPartition, int]:
    found = await kafka.partitions_of(names)
    parts = [TopicPartition(name, p) for name, numbers in found.items() for p in numbers]
    if not parts:
        return {}
    consumer = kafka.consumer(group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets(parts)
    finally:
        await consumer.stop()


async def _group_lag(admin: AIOKafkaAdminClient, group: str, ends: dict[TopicPartition, int], topic: str) -> int | None:
    committed = await admin.list_consumer_group_offsets(group)
    if not committed:
        return None
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items() if tp.topic == topic)


async def kafka_figures(kafka: KafkaClients, watched: Watched) -> dict[str, Any]:
    """Records per topic, the DLQ size, and the worker's and delivery's lag (None before the
    group has committed anything)."""
    ends = await _end_offsets(kafka, watched.topics)
    sizes = {t: sum(v for tp, v in ends.items() if tp.topic == t) for t in watched.topics}
    admin = kafka.admin()
    await admin.start()
    try:
        return {
            "topics": sizes,
            "dlqSize": sizes.get(watched.dlq, 0),
            "workerLag": await _group_lag(admin, watched.worker_group, ends, watched.events),
            "deliveryLag": await _group_lag(admin, watched.delivery_group, ends, watched.replies),
        }
    finally:
        await admin.close()


async def collect(kafka: KafkaClients, watched: Watched, leases_table: LeaseTable,
                  credentials: CredentialStore | None) -> dict[str, Any]:
    """The figures of `agentstream status`; `credentials` None without the key that decrypts the
    Gmail watches and the webhook outcomes (both None then)."""
    status = await kafka_figures(kafka, watched)
    leases = await leases_table.all()
    status["gmailWatches"] = await _unless_locked(watch_expiries, credentials)
    status["handoffWebhooks"] = await _unless_locked(webhook_statuses, credentials)
    status["bridgeShards"] = [
        {"shard": k.split("|")[-1], "owner": v.owner, "alive": bool(v.owner) and v.expires_at > now_ms(),
         "finished": v.finished, "checkpoint": v.checkpoint}
        for k, v in leases.items() if "|" in k  # a shard's lease (bridge.lease_key), not a timer's or another row
    ]
    return status


async def _unless_locked(read: Callable[[CredentialStore], Awaitable[Any]], credentials: CredentialStore | None) -> Any:
    """What `read` finds in the credentials; None without the key that decrypts them."""
    if credentials is None:
        return None
    try:
        return await read(credentials)
    except CredentialsError:
        return None


def describe_webhook(hook: dict[str, str]) -> str:
    """A status row's text for one business's handoff webhook."""
    if hook.get("failures", "0") != "0":
        return (f"FAILING: {hook['failures']} notification(s) failed since the last success; last at "
                f"{hook.get('lastFailureAt')}: {hook.get('lastError')} ({hook.get('url')})")
    return f"ok, last call {hook.get('lastCallAt')} ({hook.get('url')})"


def describe_watch(watch: dict[str, Any]) -> str:
    """A status row's text for one business's Gmail watch."""
    if not watch["topic"]:
        return "no watchTopic set"
    if watch["expiresAt"] is None:
        return "not started yet (the gateway starts it)"
    when = datetime.fromtimestamp(watch["expiresAt"] / 1000, timezone.utc)
    return f"{'expired' if watch['expiresAt'] < now_ms() else 'expires'} {when:%Y-%m-%d %H:%M} UTC"


async def export_lag(kafka: KafkaClients, watched: Watched, stop: asyncio.Event, every_s: float = 15.0) -> None:
    """Keep the consumer-lag and DLQ-size gauges of /metrics current until `stop`."""
    while not stop.is_set():
        try:
            figures = await kafka_figures(kafka, watched)
            metrics.DLQ_SIZE.set(figures["dlqSize"])
            for group, topic, lag in ((watched.worker_group, watched.events, figures["workerLag"]),
                                      (watched.delivery_group, watched.replies, figures["deliveryLag"])):
                if lag is not None:
                    metrics.CONSUMER_LAG.labels(group=group, topic=topic).set(lag)
        except Exception as exc:  # metrics must never take the gateway down
            log.warning("status.lag_export_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        await wait_or_stop(stop, every_s)
