"""The analytics consumer: per-business figures from `agent.events.v1`, kept in memory.

It reads with a consumer group of its own, so it never takes events from the worker. Its state
lives only in this process and is rebuilt from the log: every partition is read from the
beginning on start and offsets are never committed (a rebalance resumes each partition where
this process left it). Every process needs every partition, so the group is `ANALYTICS_GROUP`
plus the host and a random suffix: a gateway and `agentstream analytics` running side by side
(or two gateways) each see all events instead of splitting them. Records that do not parse (bad
JSON, an unknown `schemaVersion` or type) are logged, counted in
`agentstream_analytics_records_total{outcome="skipped"}` and skipped; the loop goes on.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter, Gauge

from agentstream.adapters.kafka import loads
from agentstream.events import UnknownSchemaVersion, parse_event
from agentstream.projections.analytics import BusinessStats, Limits
from agentstream.settings import Settings
from agentstream.streams.stopping import UpgradeNeeded, wait_or_stop

log = structlog.get_logger(__name__)
RECORDS = Counter("agentstream_analytics_records_total", "Records read by the analytics consumer", ["outcome"])
BUSINESSES = Gauge("agentstream_analytics_businesses", "Businesses the analytics consumer has figures for")
RETRY_DELAY_S = 5.0


class _FromOwnPositions(ConsumerRebalanceListener):
    """Each assigned partition starts where this process left it, else at offset 0 (the start)."""

    def __init__(self, consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        self._consumer = consumer
        self._positions = positions

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self._consumer.seek(tp, self._positions.get(tp, 0))


def own_group(settings: Settings) -> str:
    """A group for one consumer alone, so that it is assigned every partition."""
    return f"{settings.analytics_group}.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"


class AnalyticsConsumer:
    """Folds every event into `BusinessStats` per business; `snapshot()` reads the figures."""

    def __init__(self, settings: Settings, limits: Limits | None = None) -> None:
        self._settings = settings
        self._limits = limits
        self._stats: dict[str, BusinessStats] = {}
        self._positions: dict[TopicPartition, int] = {}
        self.group_id = own_group(settings)
        self.running = False
        self.upgrade_needed: str | None = None

    def businesses(self) -> list[str]:
        return sorted(self._stats)

    def snapshot(self, business_id: str) -> dict[str, Any]:
        """The figures of one business (empty figures when it has no events yet)."""
        return (self._stats.get(business_id) or BusinessStats(business_id, self._limits)).snapshot()

    def handle(self, raw: bytes | None, where: str = "") -> str:
        """Fold one record; returns its outcome: counted, duplicate or skipped."""
        try:
            event = parse_event(loads(raw or b""))
        except UnknownSchemaVersion as exc:
            raise UpgradeNeeded(str(exc)) from None
        except Exception as exc:  # never stop the loop on one bad record
            log.warning("analytics.skipped", where=where, error=f"{type(exc).__name__}: {exc}"[:300])
            outcome = "skipped"
        else:
            stats = self._stats.get(event.businessId)
            if stats is None:
                stats = self._stats[event.businessId] = BusinessStats(event.businessId, self._limits)
                BUSINESSES.set(len(self._stats))
            outcome = "counted" if stats.apply(event) else "duplicate"
        RECORDS.labels(outcome=outcome).inc()
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; a failure is logged and consuming starts again."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except UpgradeNeeded as exc:  # stop consuming (never skip it); the figures so far stay served
                self.upgrade_needed = str(exc)
                log.error("analytics.upgrade_needed", error=str(exc)[:300], hint="upgrade this gateway")
                return
            except Exception:
                log.exception("analytics.failed")
                await wait_or_stop(stop, RETRY_DELAY_S)

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        consumer.subscribe([self._settings.topic_events], listener=_FromOwnPositions(consumer, self._positions))
        await consumer.start()
        self.running = True
        log.info("analytics.started", topic=self._settings.topic_events, group=self.group_id)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=300, max_records=1000)
                for tp, records in batches.items():
                    for record in records:
                        self.handle(record.value, f"{tp.topic}/{tp.partition}@{record.offset}")
                    self._positions[tp] = records[-1].offset + 1
                await asyncio.sleep(0)  # a long catch-up must not starve the gateway's requests
        finally:
            self.running = False
            await consumer.stop()
