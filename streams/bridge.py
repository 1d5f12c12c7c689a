"""DynamoDB Streams → Kafka `agent.events.v1` (the log is the outbox; nothing lost on a crash).

Each shard is read by the bridge holding its lease. A batch of records is produced with
key = streamId (idempotent producer, acks=all) and the shard's checkpoint moves only after
Kafka acknowledged the whole batch. A child shard is read only after its parent finished.
Lost stream positions (trimmed, expired, a restarted local server) fall back to TRIM_HORIZON
and ask for a reconciliation from the log of the window they lost: from the time of the lost
checkpoint's record (kept with the checkpoint) less a margin. The reconciliation runs in a task
of its own; the shard reader goes on at once.

A local server restarted on its saved state keeps the stream and its shards but not their
records, and an old iterator then points past the new records without an error. So every
`recheck_s` a reader compares its shard's first sequence number (described at each discovery
round) with the one it started on: if it changed, the shard's records restarted, and the reader
reads it again from TRIM_HORIZON and asks for the window since its last good check; if not, it
takes a new iterator from its checkpoint (which says so if the position was lost meanwhile).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import structlog

from agentstream import metrics
from agentstream.adapters.dynamo.client import error_code, from_item, unreachable
from agentstream.adapters.dynamo.event_store import event_body, is_event_item
from agentstream.adapters.kafka.client import dumps, event_headers, send_keyed
from agentstream.events import iso
from agentstream.streams.leases import Lease, LeaseLost, LeaseTable, now_ms
from agentstream.streams.reconcile import window_start
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)
LOST_POSITION = {"TrimmedDataAccessException", "ExpiredIteratorException", "ResourceNotFoundException"}


@dataclass
class BridgeConfig:
    stream_arn: str
    topic: str
    start_position: str = "TRIM_HORIZON"
    idle_poll_s: float = 0.2  # after an empty read; doubled at each empty read after it, up to idle_poll_max_s
    idle_poll_max_s: float = 0.25  # DynamoDB Streams serves a shard 5 reads a second
    discover_every_s: float = 10.0
    batch_limit: int = 1000
    loss_margin_s: float = 600.0  # a lost window starts this long before the lost checkpoint's time
    recheck_s: float = 10.0  # a reader checks its shard was not restarted this often


@dataclass
class BridgeStats:
    records: int = 0
    published: int = 0
    batches: int = 0
    losses: int = 0
    shards: set[str] = field(default_factory=set)


@dataclass
class ShardCheck:
    """What a reader last verified of its shard: its first sequence number, the checkpoint's
    time then, and when (monotonic seconds)."""

    start: str | None
    checkpoint_at: str | None
    at: float


@dataclass
class Inflight:
    """A batch handed to Kafka and not yet checkpointed."""

    acks: list[asyncio.Future[Any]]
    first: dict[str, Any]
    last: dict[str, Any]
    events: int
    settled: bool = False


def lease_key(stream_arn: str, shard_id: str) -> str:
    """Leases are per stream and shard: a recreated stream never inherits old checkpoints."""
    return f"{stream_arn}|{shard_id}"


class StreamShards(Protocol):
    """The DynamoDB Streams calls the bridge makes (aiobotocore's `dynamodbstreams` client has them)."""

    async def describe_stream(self, **kwargs: Any) -> dict[str, Any]: ...

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]: ...

    async def get_records(self, **kwargs: Any) -> dict[str, Any]: ...


class Bridge:
    """Reads every shard it can lease and publishes the events to Kafka."""

    def __init__(
        self,
        streams: StreamShards,
        producer: Any,
        leases: LeaseTable,
        config: BridgeConfig,
        on_loss: Callable[[str, datetime | None], Awaitable[None]] | None = None,
    ) -> None:
        self._streams = streams
        self._producer = producer
        self._leases = leases
        self._cfg = config
        self._on_loss = on_loss
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._starts: dict[str, str | None] = {}  # shard -> its first sequence number, as last described
        self._idle: dict[str, float] = {}  # shard -> the wait after its next empty read
        self.stats = BridgeStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Discover shards, take leases, read; on stop, flush and hand leases back."""
        log.info("bridge.started", owner=self._leases.owner, stream=self._cfg.stream_arn)
        await self._retire_old_streams()
        try:
            while not stop.is_set():
                await self._discover_and_assign_or_wait()
                await wait_or_stop(stop, self._cfg.discover_every_s)
        finally:
            for task in self._readers.values():
                task.cancel()
            await asyncio.gather(*self._readers.values(), return_exceptions=True)
            await self._producer.flush()
            log.info("bridge.stopped", owner=self._leases.owner, published=self.stats.published)

    async def _retire_old_streams(self) -> None:
        """Leases of an older stream of the same table mean the stream was recreated (or the
        local server restarted): what it held unread is recovered from the log."""
        table_prefix = self._cfg.stream_arn.split("/stream/")[0] + "/stream/"
        current = self._cfg.stream_arn + "|"
        stale = {k: lease for k, lease in (await self._leases.all()).items()
                 if k.startswith(table_prefix) and not k.startswith(current) and not lease.finished}
        if stale:
            times = [lease.checkpoint_at or lease.registered_at for lease in stale.values()]
            await self._lost("-", f"{len(stale)} shard(s) of an older stream of this table were never finished", times)
            for key in stale:
                await self._leases.delete(key)

    async def _discover_and_assign_or_wait(self) -> None:
        """A discovery round; DynamoDB out of reach (a restart, an outage) is waited out: the next
        round tries again, and the readers whose calls failed are started again from their
        checkpoints once their leases can be taken."""
        try:
            await self._discover_and_assign()
        except Exception as exc:
            if not unreachable(exc):
                raise
            metrics.BRIDGE_ERRORS.labels(kind="unreachable").inc()
            log.warning("bridge.unreachable", error=str(exc))

    async def _discover_and_assign(self) -> None:
        shards = await self._describe_shards()
        self._starts = {shard["ShardId"]: shard.get("SequenceNumberRange", {}).get("StartingSequenceNumber")
                        for shard in shards}
        leases = await self._leases.all()
        for shard in shards:
            key = lease_key(self._cfg.stream_arn, shard["ShardId"])
            if key not in leases:
                parent = shard.get("ParentShardId")
                await self._leases.register(key, lease_key(self._cfg.stream_arn, parent) if parent else None)
        leases = await self._leases.all()
        for key, lease in leases.items():
            if not key.startswith(self._cfg.stream_arn + "|") or key in self._readers:
                continue
            if lease.available(now_ms()) and self._parent_done(lease, leases):
                taken = await self._leases.acquire(lease)
                if taken:
                    self._readers[key] = asyncio.create_task(self._read_shard(taken), name=f"shard:{key}")
        self._readers = {k: t for k, t in self._readers.items() if not t.done()}
        self.stats.shards = set(self._readers)

    @staticmethod
    def _parent_done(lease: Lease, leases: dict[str, Lease]) -> bool:
        """Parent before child: a child waits until its parent (if still known) is finished."""
        parent = leases.get(lease.parent) if lease.parent else None
        return parent is None or parent.finished

    async def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self._cfg.stream_arn}
        while True:
            desc = (await self._streams.describe_stream(**kwargs))["StreamDescription"]
            shards.extend(desc.get("Shards", []))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    async def _read_shard(self, lease: Lease) -> None:
        shard_id = lease.shard_id.split("|", 1)[1]
        log.info("bridge.shard.acquired", shard=shard_id, checkpoint=lease.checkpoint)
        heartbeat = asyncio.create_task(self._heartbeat(lease))
        inflight: Inflight | None = None
        try:
            from_start = lease.checkpoint is None and self._cfg.start_position == "TRIM_HORIZON"
            iterator = await self._iterator(shard_id, lease)
            checked = ShardCheck(self._starts.get(shard_id), lease.checkpoint_at, time.monotonic())
            while iterator:
                if time.monotonic() - checked.at > self._cfg.recheck_s:
                    await self._settle(lease, shard_id, inflight)
                    iterator, checked = await self._recheck(shard_id, lease, iterator, checked)
                    continue
                iterator, inflight = await self._read_batch(lease, shard_id, iterator, inflight)
                if checked.start is None and from_start and inflight is not None:
                    # begun on an empty shard: its first record is the shard's start to check against
                    checked = dataclasses.replace(checked, start=inflight.first["dynamodb"]["SequenceNumber"])
            await self._settle(lease, shard_id, inflight)
            await self._leases.checkpoint(lease, lease.checkpoint or "", finished=True)
            log.info("bridge.shard.finished", shard=shard_id)
        except LeaseLost:
            log.warning("bridge.shard.lease_lost", shard=shard_id)
        except asyncio.CancelledError:
            await self._settle(lease, shard_id, inflight)
            await self._leases.release(lease)
            raise
        except Exception as exc:
            metrics.BRIDGE_ERRORS.labels(kind=type(exc).__name__).inc()
            log.exception("bridge.shard.failed", shard=shard_id)
            await self._release_if_reachable(lease)
        finally:
            heartbeat.cancel()

    async def _release_if_reachable(self, lease: Lease) -> None:
        """Hand a failed reader's lease back; out of reach, it expires instead (any bridge,
        this one too, takes the shard again from its checkpoint then)."""
        try:
            await self._leases.release(lease)
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("bridge.lease_left_to_expire", shard=lease.shard_id, error=str(exc))

    async def _read_batch(self, lease: Lease, shard_id: str, iterator: str,
                          inflight: Inflight | None) -> tuple[str | None, Inflight | None]:
        """Read the next batch while Kafka acknowledges the previous one and its checkpoint is
        written. Order is kept: records are handed to the producer in order, and a batch's
        checkpoint moves only once Kafka has acknowledged all of it."""
        settling = asyncio.ensure_future(self._settle(lease, shard_id, inflight))
        try:
            resp = await self._streams.get_records(ShardIterator=iterator, Limit=self._cfg.batch_limit)
        except asyncio.CancelledError:
            await settling  # a stopping bridge still checkpoints what Kafka acknowledged
            raise
        except Exception as exc:
            await settling
            code = error_code(exc)
            if code == "ExpiredIteratorException":
                return await self._iterator(shard_id, lease), None
            if code in ("ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"):
                metrics.BRIDGE_ERRORS.labels(kind="throttled").inc()
                await asyncio.sleep(1.0)
                return iterator, None
            raise
        metrics.BRIDGE_LAST_READ.labels(shard=shard_id).set_to_current_time()
        await settling
        records = resp.get("Records", [])
        if not records:
            metrics.BRIDGE_LAG_MS.labels(shard=shard_id).set(0)
            await asyncio.sleep(self._idle_wait(shard_id))
            return resp.get("NextShardIterator"), None
        self._idle.pop(shard_id, None)
        return resp.get("NextShardIterator"), await self._enqueue(records)

    def _idle_wait(self, shard_id: str) -> float:
        """The wait after an empty read: `idle_poll_s`, doubling while the shard stays empty, up
        to `idle_poll_max_s` (an idle bridge costs a few reads a second; a busy one never waits)."""
        wait = self._idle.get(shard_id, self._cfg.idle_poll_s)
        self._idle[shard_id] = min(max(wait * 2, self._cfg.idle_poll_s), max(self._cfg.idle_poll_max_s, self._cfg.idle_poll_s))
        return wait

    async def _enqueue(self, records: list[dict[str, Any]]) -> Inflight:
        """Hand every event of a batch to the producer, in order, one Kafka batch per partition."""
        events = (from_item(image) for image in _new_images(records))
        keyed = [(item["streamId"].encode(), dumps(event_body(item)), event_headers(int(item["seq"]), str(item["type"])))
                 for item in events if is_event_item(item)]
        self.stats.records += len(records)
        return Inflight(await send_keyed(self._producer, self._cfg.topic, keyed), records[0], records[-1], len(keyed))

    async def _settle(self, lease: Lease, shard_id: str, inflight: Inflight | None) -> None:
        """Wait for Kafka to acknowledge a batch, then move the shard's checkpoint past it."""
        if inflight is None or inflight.settled:
            return
        await asyncio.gather(*inflight.acks)
        await self._leases.checkpoint(lease, inflight.last["dynamodb"]["SequenceNumber"], at=_appended_at(inflight.last))
        inflight.settled = True
        _record_lag(shard_id, inflight.last)
        self.stats.published += inflight.events
        self.stats.batches += 1
        metrics.BRIDGE_RECORDS.inc(inflight.events)

    async def _recheck(self, shard_id: str, lease: Lease, iterator: str,
                       last: ShardCheck) -> tuple[str | None, ShardCheck]:
        """The iterator to read on with, after checking the shard's records did not restart."""
        start = self._starts.get(shard_id, last.start)
        if last.start is not None and start != last.start:
            await self._lost(shard_id, f"the shard's records restarted (first sequence number {last.start}, now {start})",
                             [last.checkpoint_at or lease.registered_at])
            resp = await self._streams.get_shard_iterator(StreamArn=self._cfg.stream_arn, ShardId=shard_id,
                                                          ShardIteratorType="TRIM_HORIZON")
            fresh = resp.get("ShardIterator")
        else:
            fresh = await self._iterator(shard_id, lease) if lease.checkpoint else iterator
        return fresh, ShardCheck(start, lease.checkpoint_at, time.monotonic())

    async def _iterator(self, shard_id: str, lease: Lease) -> str | None:
        checkpoint = lease.checkpoint
        args: dict[str, Any] = {"StreamArn": self._cfg.stream_arn, "ShardId": shard_id}
        if checkpoint:
            try:
                resp = await self._streams.get_shard_iterator(
                    **args, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint
                )
                return resp.get("ShardIterator")
            except Exception as exc:
                if error_code(exc) not in LOST_POSITION | {"ValidationException"}:
                    raise
                await self._lost(shard_id, f"checkpoint {checkpoint} no longer readable: {error_code(exc)}",
                                 [lease.checkpoint_at or lease.registered_at])
                args["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            args["ShardIteratorType"] = self._cfg.start_position
        return (await self._streams.get_shard_iterator(**args)).get("ShardIterator")

    async def _lost(self, shard_id: str, why: str, times: list[str | None]) -> None:
        """Ask for the lost window to be reconciled: from the earliest of the lost positions'
        times less the margin (the whole table if one has no time)."""
        self.stats.losses += 1
        metrics.BRIDGE_TRIMS.inc()
        since = window_start(times, timedelta(seconds=self._cfg.loss_margin_s))
        log.warning("bridge.position_lost", shard=shard_id, why=why, since=iso(since) if since else "all")
        if self._on_loss:
            await self._on_loss(why, since)

    async def _heartbeat(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self._leases.ttl_ms / 3000)
            try:
                await self._leases.renew(lease)
            except Exception as exc:  # out of reach: renewed at the next beat, or lost to expiry
                if not unreachable(exc):
                    raise
                log.warning("bridge.renew_failed", shard=lease.shard_id, error=str(exc))


def _new_images(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new item of each insert or update (removals carry none)."""
    return [image for r in records
            if r.get("eventName") != "REMOVE" and (image := r.get("dynamodb", {}).get("NewImage"))]


def _appended_at(record: dict[str, Any]) -> str | None:
    """When a stream record's event was appended: its `ingestedAt`, else the stream's own time."""
    image = record.get("dynamodb", {}).get("NewImage") or {}
    if "S" in image.get("ingestedAt", {}):
        return str(image["ingestedAt"]["S"])
    created = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if created is None:
        return None
    return iso(created if isinstance(created, datetime) else datetime.fromtimestamp(float(created), timezone.utc))


def _record_lag(shard_id: str, record: dict[str, Any]) -> None:
    created = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if created is not None:
        ts = created.timestamp() if hasattr(created, "timestamp") else float(created)
        metrics.BRIDGE_LAG_MS.labels(shard=shard_id).set(max(0.0, (time.time() - ts) * 1000))


def new_owner() -> str:
    return f"bridge-{uuid.uuid4().hex[:8]}"
