"""`agentstream status`: topic sizes, consumer lag, DLQ size, bridge leases and Gmail watch
expiries, for a person; the same lag and DLQ figures as /metrics gauges (`export_lag`, run by
the gateway)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream import metrics
from agentstream.adapters.credentials import CredentialsError, credential_store
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.kafka import partitions_of, topics
from agentstream.adapters.owner_webhook import webhook_statuses
from agentstream.settings import Settings
from agentstream.streams.gmail_watch import watch_expiries
from agentstream.streams.leases import LeaseTable, now_ms
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)


async def _end_offsets(settings: Settings, names: list[str]) -> dict[TopicPartition, int]:
    found = await partitions_of(settings.kafka_bootstrap_servers, names)
    parts = [TopicPartition(name, p) for name, numbers in found.items() for p in numbers]
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
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


async def kafka_figures(settings: Settings) -> dict[str, Any]:
    """Records per topic, the DLQ size, and the worker's and delivery's lag (None before the
    group has committed anything)."""
    ends = await _end_offsets(settings, topics(settings))
    sizes = {t: sum(v for tp, v in ends.items() if tp.topic == t) for t in topics(settings)}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return {
            "topics": sizes,
            "dlqSize": sizes.get(settings.topic_dlq, 0),
            "workerLag": await _group_lag(admin, settings.worker_group, ends, settings.topic_events),
            "deliveryLag": await _group_lag(admin, settings.delivery_group, ends, settings.topic_replies),
        }
    finally:
        await admin.close()


async def collect(settings: Settings) -> dict[str, Any]:
    status = await kafka_figures(settings)
    async with dynamodb_client(settings) as ddb:
        leases = await LeaseTable(ddb, settings.tables.leases, "status").all()
        status["gmailWatches"] = await _gmail_watches(ddb, settings)
        status["handoffWebhooks"] = await _handoff_webhooks(ddb, settings)
    status["bridgeShards"] = [
        {"shard": k.split("|")[-1], "owner": v.owner, "alive": bool(v.owner) and v.expires_at > now_ms(),
         "finished": v.finished, "checkpoint": v.checkpoint}
        for k, v in leases.items() if "|" in k  # a shard's lease (bridge.lease_key), not a timer's or another row
    ]
    return status


async def _gmail_watches(ddb: Any, settings: Settings) -> list[dict[str, Any]] | None:
    """Each Gmail business's watch expiry; None without the key that decrypts them."""
    try:
        return await watch_expiries(credential_store(ddb, settings))
    except CredentialsError:
        return None


async def _handoff_webhooks(ddb: Any, settings: Settings) -> list[dict[str, str]] | None:
    """Each business's last handoff-webhook outcome; None without the key that decrypts them."""
    try:
        return await webhook_statuses(credential_store(ddb, settings))
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


async def export_lag(settings: Settings, stop: asyncio.Event, every_s: float = 15.0) -> None:
    """Keep the consumer-lag and DLQ-size gauges of /metrics current until `stop`."""
    while not stop.is_set():
        try:
            figures = await kafka_figures(settings)
            metrics.DLQ_SIZE.set(figures["dlqSize"])
            for group, topic, lag in ((settings.worker_group, settings.topic_events, figures["workerLag"]),
                                      (settings.delivery_group, settings.topic_replies, figures["deliveryLag"])):
                if lag is not None:
                    metrics.CONSUMER_LAG.labels(group=group, topic=topic).set(lag)
        except Exception as exc:  # metrics must never take the gateway down
            log.warning("status.lag_export_failed", error=f"{type(exc).__name__}: {exc}"[:200])
        await wait_or_stop(stop, every_s)
