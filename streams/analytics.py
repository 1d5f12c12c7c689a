"""The analytics consumer: per-business figures from `agent.events.v1`, kept in memory.

It reads with a consumer group of its own, so it never takes events from the worker. Every
process needs every partition, so the group is `ANALYTICS_GROUP` plus the host and a random
suffix: a gateway and `agentstream analytics` running side by side (or two gateways) each see
all events instead of splitting them. Offsets are never committed to Kafka: the state is saved
with the offsets it covers (`AnalyticsSnapshots`, every `ANALYTICS_SNAPSHOT_EVERY` seconds and
on stop) and a new process starts from the latest snapshot, reading only what came after it
(the fold counts each event once, so a record read again is not counted twice). A snapshot of
another version of the fold is not used: that process reads from offset 0. The loop is
`ConsumerRunner`'s: a record that does not parse is logged, counted in
`agentstream_analytics_records_total{outcome="skipped"}` and skipped (the worker DLQs it); an
unknown `schemaVersion` or type stops consuming (the figures so far stay) until an upgrade.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import socket
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge

from agentstream.adapters.kafka.client import KafkaClients, loads
from agentstream.adapters.dynamo.snapshots import Snapshot
from agentstream.events import Event, parse_event
from agentstream.projections import analytics as analytics_fold
from agentstream.projections.analytics import BusinessStats, Limits, state_of, stats_from
from agentstream.streams.runner import ConsumerRunner, Failure
from agentstream.streams.stopping import UpgradeNeeded, wait_or_stop

if TYPE_CHECKING:
    from agentstream.settings import Tables

log = structlog.get_logger(__name__)
RECORDS = Counter("agentstream_analytics_records_total", "Records read by the analytics consumer", ["outcome"])
BUSINESSES = Gauge("agentstream_analytics_businesses", "Businesses the analytics consumer has figures for")


class AnalyticsConfig(Protocol):
    """The analytics group, the topic it reads, how often it saves, and where (signed with the key)."""

    @property
    def analytics_group(self) -> str: ...

    @property
    def topic_events(self) -> str: ...

    @property
    def analytics_snapshot_every_s(self) -> float: ...

    @property
    def tables(self) -> Tables: ...

    @property
    def credentials_key(self) -> str | None: ...  # and PREVIOUS_SECRET_KEYS, read by the key ring


def own_group(settings: AnalyticsConfig) -> str:
    """A group for one consumer alone, so that it is assigned every partition."""
    return f"{settings.analytics_group}.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"


FOLD_VERSION = hashlib.sha256(inspect.getsource(analytics_fold).encode()).hexdigest()[:16]


class Snapshots(Protocol):
    """Signed snapshots by name (`adapters/dynamo/snapshots.SnapshotStore`)."""

    async def save(self, name: str, state: Any, offsets: dict[str, int], version: str) -> None: ...

    async def load(self, name: str) -> Snapshot | None: ...


class AnalyticsSnapshots:
    """The analytics state of `ANALYTICS_GROUP` with the offsets of `agent.events.v1` it covers."""

    def __init__(self, store: Snapshots, settings: AnalyticsConfig) -> None:
        """`store`: the snapshots table, signing with the key ring of AGENTSTREAM_SECRET_KEY."""
        self._store = store
        self._name = f"analytics#{settings.analytics_group}#{settings.topic_events}"
        self._topic = settings.topic_events

    async def save(self, stats: dict[str, BusinessStats], positions: dict[TopicPartition, int]) -> None:
        state = [state_of(s) for s in stats.values()]
        offsets = {f"{tp.partition}": n for tp, n in positions.items() if tp.topic == self._topic}
        await self._store.save(self._name, state, offsets, FOLD_VERSION)

    async def load(self) -> tuple[dict[str, BusinessStats], dict[TopicPartition, int]] | None:
        """The saved state (signed by us, same fold version), or None: start from offset 0."""
        found = await self._store.load(self._name)
        if found is None or found.version != FOLD_VERSION:
            return None
        try:
            stats = {s.business_id: s for s in map(stats_from, found.state)}
        except (KeyError, TypeError, ValueError) as exc:  # signed by us, but not data this fold reads
            log.warning("analytics.snapshot_unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
            return None
        return stats, {TopicPartition(self._topic, int(p)): n for p, n in found.offsets.items()}


class AnalyticsConsumer:
    """Folds every event into `BusinessStats` per business; `snapshot()` reads the figures."""

    def __init__(self, settings: AnalyticsConfig, kafka: KafkaClients, limits: Limits | None = None,
                 snapshots: AnalyticsSnapshots | None = None) -> None:
        self._settings = settings
        self._kafka = kafka
        self._limits = limits
        self._snapshots = snapshots
        self._stats: dict[str, BusinessStats] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._saved: dict[TopicPartition, int] = {}
        self._restored = False
        self.group_id = own_group(settings)
        self.running = False
        self.upgrade_needed: str | None = None

    def businesses(self) -> list[str]:
        return sorted(self._stats)

    def snapshot(self, business_id: str) -> dict[str, Any]:
        """The figures of one business (empty figures when it has no events yet)."""
        return (self._stats.get(business_id) or BusinessStats(business_id, self._limits)).snapshot()

    def fold(self, event: Event) -> str:
        """Fold one event; returns its outcome: counted or duplicate."""
        stats = self._stats.get(event.businessId)
        if stats is None:
            stats = self._stats[event.businessId] = BusinessStats(event.businessId, self._limits)
            BUSINESSES.set(len(self._stats))
        outcome = "counted" if stats.apply(event) else "duplicate"
        RECORDS.labels(outcome=outcome).inc()
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set (or an event this build cannot read: then stop consuming
        and keep the figures). Any other failure ends it with the error: its process stops."""
        await self._restore()
        consumer = self._kafka.consumer(group_id=self.group_id, enable_auto_commit=False, auto_offset_reset="earliest")
        runner: ConsumerRunner[Event] = ConsumerRunner(
            consumer, "analytics", lambda record: parse_event(loads(record.value or b"")),
            self._handle, self._skipped, commit=self._progress)

        async def start_where_we_were(assigned: set[TopicPartition]) -> None:
            for tp in assigned:
                consumer.seek(tp, self._positions.get(tp, 0))

        consumer.subscribe([self._settings.topic_events], listener=runner.listener(start_where_we_were))
        await consumer.start()
        self.running = True
        log.info("analytics.started", topic=self._settings.topic_events, group=self.group_id,
                 resumed={f"{tp.partition}": n for tp, n in self._positions.items()})
        saving = asyncio.create_task(self._save_every(stop))
        try:
            await runner.run(stop)
        except UpgradeNeeded as exc:  # stop consuming (never skip it); the figures so far stay served
            self.upgrade_needed = str(exc)
            log.error("analytics.upgrade_needed", error=str(exc)[:300], hint="upgrade this gateway")
        finally:
            self.running = False
            saving.cancel()
            await asyncio.gather(saving, return_exceptions=True)
            await consumer.stop()
        await self.save()

    async def _restore(self) -> None:
        if self._snapshots is None or self._restored:
            return
        self._restored = True
        found = await self._snapshots.load()
        if found is not None:
            self._stats, self._positions = found
            self._saved = dict(self._positions)
            BUSINESSES.set(len(self._stats))

    async def save(self) -> None:
        """Save the state with the offsets it covers (when anything was read since the last save)."""
        if self._snapshots is None or self._positions == self._saved:
            return
        positions = dict(self._positions)
        await self._snapshots.save(self._stats, positions)  # serialised at once: state and offsets agree
        self._saved = positions
        log.info("analytics.snapshot_saved", offsets={f"{tp.partition}": n for tp, n in positions.items()})

    async def _save_every(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_or_stop(stop, self._settings.analytics_snapshot_every_s)
            try:
                await self.save()
            except Exception:  # the next one may succeed; a restart reads a little more
                log.exception("analytics.snapshot_failed")

    async def _handle(self, event: Event, attempt: int) -> None:
        self.fold(event)

    async def _skipped(self, failure: Failure[Event]) -> None:
        record = failure.record
        log.warning("analytics.skipped", where=f"{record.topic}/{record.partition}@{record.offset}", error=failure.error[:300])
        RECORDS.labels(outcome="skipped").inc()

    async def _progress(self, positions: dict[TopicPartition, int]) -> None:
        self._positions.update(positions)
