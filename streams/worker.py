"""The Faust worker: consumes `agent.events.v1`, one conversation at a time per streamId.

Faust acks are manual (`noack`): an event is acked only after its effects are durable, and
Faust commits the highest contiguous acked offset. Conversations run concurrently through a
keyed executor; a failing event is retried (stamina), then recorded as skipped in its
conversation (`EventSkipped`) and sent to `agent.dlq.v1` with its error. No
exception ever escapes into Faust (which would ack and silently drop the event). An event of a
type or schemaVersion this build cannot read is neither acked nor DLQ'd: the worker says so and
stops (exit code 3), and the upgraded worker reads it from the uncommitted offset.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

import faust
import structlog
from pydantic import ValidationError

from agentstream import metrics
from agentstream.adapters.kafka.dlq import Dlq
from agentstream.adapters.kafka.client import METADATA_MAX_AGE_MS, dumps, loads, seq_of
from agentstream.events import Event, parse_event, UnknownSchemaVersion
from agentstream.retry import RetryPolicy
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.dead_letters import EventFailed, SkipRecorder
from agentstream.streams.keyed import KeyedExecutor
from agentstream.streams.offsets import InOrderAcks
from agentstream.streams.positions import PositionKeeper
from agentstream.streams.stopping import UpgradeNeeded

log = structlog.get_logger(__name__)
RETRY = RetryPolicy(attempts=5, wait_initial=0.2, wait_max=10.0, wait_jitter=0.5, timeout=60.0)  # about 3 s in all, plus jitter
MAX_SKIPS_BEHIND = 10  # earlier events of the log found poisoned while handling one record


def _retryable(exc: Exception) -> bool:
    """Everything but an event this build cannot read (the fix for that is an upgrade)."""
    return not isinstance(exc, UnknownSchemaVersion)


async def process_with_retries(processor: ConversationProcessor, dlq: Dlq, key: bytes | None, raw: bytes,
                               retry: RetryPolicy = RETRY, skips: SkipRecorder | None = None) -> None:
    """Parse and apply one record. A bad record goes to the DLQ; an event that fails every attempt
    is recorded as skipped in its conversation (`EventSkipped`, so the conversation goes on
    without it) and goes to the DLQ; an event this build cannot read (in the record or in the
    log behind it) raises UpgradeNeeded. If the skip cannot be recorded, that error is raised
    (the record is left unacked: a restarted worker meets it again)."""
    try:
        event = parse_event(loads(raw))
    except UnknownSchemaVersion as exc:
        raise UpgradeNeeded(str(exc)) from None
    except (ValueError, ValidationError) as exc:
        await dlq.send("parse", key, raw, f"{type(exc).__name__}: {exc}")
        return
    structlog.contextvars.bind_contextvars(eventId=event.eventId, streamId=event.streamId)
    try:
        for _ in range(MAX_SKIPS_BEHIND):
            failed = await _attempts(processor, event, retry)
            if failed is None:
                return
            culprit, error = failed
            if skips is not None:
                await skips.record(culprit, "process", error)
            await dlq.send("process", key, raw if culprit is event or skips is None else dumps(culprit.to_json_dict()), error)
            metrics.WORKER_EVENTS.labels(type=culprit.type, outcome="dlq").inc()
            if culprit is event or skips is None:
                return  # else an earlier event failed for good: skipped, this one is tried again
        log.error("worker.too_many_failed_events_behind", limit=MAX_SKIPS_BEHIND)  # acked; the next event fills the gap
    finally:
        structlog.contextvars.unbind_contextvars("eventId", "streamId")


async def _attempts(processor: ConversationProcessor, event: Event, retry: RetryPolicy) -> tuple[Event, str] | None:
    """Apply `event` with retries; None once applied, else the event that failed for good (it,
    or an earlier one of the log read to fill a gap) and the error."""
    try:
        async for attempt in retry.attempts_of(_retryable):
            with attempt:
                await processor.handle(event)
        return None
    except UnknownSchemaVersion as exc:
        raise UpgradeNeeded(str(exc)) from None
    except EventFailed as exc:
        return exc.event, str(exc)
    except Exception as exc:
        return event, f"{type(exc).__name__}: {exc}"


def applied_before(processor: ConversationProcessor, key: bytes, headers: Any) -> bool:
    """Whether the record's event (its seq and type in the headers) is one the processor has
    applied already, as its cache knows; a revocation always goes through (it may answer).
    Either way the processor learns that the conversation's log reaches that seq."""
    known = seq_of(headers)
    if known is None:
        return False
    stream = key.decode("utf-8", "replace")
    processor.saw(stream, known[0], known[1])
    if known[1] == "SkipRevoked" or not processor.applied(stream, known[0]):
        return False
    metrics.WORKER_EVENTS.labels(type=known[1], outcome="duplicate").inc()
    return True


class WorkerConfig(Protocol):
    """The worker's group, its Kafka and topic."""

    @property
    def worker_group(self) -> str: ...

    @property
    def kafka_bootstrap_servers(self) -> str: ...

    @property
    def kafka_partitions(self) -> int: ...

    @property
    def topic_events(self) -> str: ...


def build_app(settings: WorkerConfig, processor: ConversationProcessor, dlq: Dlq, executor: KeyedExecutor,
              retry: RetryPolicy = RETRY, on_upgrade_needed: Callable[[str], None] = lambda why: None,
              skips: SkipRecorder | None = None, positions: PositionKeeper | None = None) -> faust.App:
    """The Faust app; `on_upgrade_needed(why)` is called (the record left unacked) when an event
    cannot be read by this build; `skips` records the events that fail every attempt;
    `positions` learns which records are done."""
    app = faust_app(settings)
    topic = events_topic(app, settings)
    processor.bursts.bind(executor.submit)  # a burst's reply job runs in order with its conversation's events

    in_order = InOrderAcks()

    @app.on_partitions_revoked.connect
    async def forget_reads(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        processor.partitions_revoked()
        in_order.forget(revoked)
        if positions is not None:
            positions.revoked(revoked)

    def ack(record: Any) -> None:
        for done in in_order.done(record.message.tp, record.message.offset):
            done.ack()
        if positions is not None:
            positions.done(record.message.tp, record.message.offset)

    @app.agent(topic, name="conversations")
    async def conversations(stream: faust.StreamT) -> None:
        async for record in stream.noack().events():
            key = record.key if isinstance(record.key, bytes) else None
            in_order.take(record.message.tp, record.message.offset, record)
            if positions is not None:
                positions.take(record.message.tp, record.message.offset, key, record.headers)
            if key is not None and applied_before(processor, key, record.headers):
                ack(record)  # read again (a rebalance, an offset reset): known from its key and seq alone
                continue
            raw = record.value

            async def job(record: Any = record, key: bytes | None = key, raw: bytes = raw) -> None:
                try:
                    await process_with_retries(processor, dlq, key, raw, retry, skips)
                except UpgradeNeeded as exc:
                    log.error("worker.upgrade_needed", error=str(exc)[:300])
                    on_upgrade_needed(str(exc))
                    return  # never acked: its offset is not committed, the upgraded worker reads it
                finally:
                    metrics.WORKER_INFLIGHT.set(executor.inflight - 1)
                stream = (key or b"").decode("utf-8", "replace")
                if processor.bursts.take_hold(stream):  # acked once the reply covering its burst is in the log
                    processor.bursts.hold(stream, lambda: ack(record))
                    return
                ack(record)

            await executor.submit((key or b"").decode("utf-8", "replace"), job)
            metrics.WORKER_INFLIGHT.set(executor.inflight)

    return app


def faust_app(settings: WorkerConfig) -> faust.App:
    """The worker's Faust app (its consumer group, commits and buffers), with no agent yet."""
    datadir = Path(os.environ.get("AGENTSTREAM_HOME", ".local")).resolve() / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.worker_group,
        broker=f"kafka://{settings.kafka_bootstrap_servers.replace(',', ';kafka://')}",
        store="memory://",
        datadir=str(datadir / "{conf.name}"),
        web_enabled=False,
        topic_partitions=settings.kafka_partitions,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=500,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=4096,
        producer_acks=-1,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        stream_wait_empty=False,  # run_worker joins its own jobs first; an unacked (unreadable) record must not hold the stop
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,  # a broker back from a restart is found in 30 s, not 5 minutes
        producer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


def events_topic(app: faust.App, settings: WorkerConfig) -> Any:
    """`agent.events.v1` as raw bytes (the worker parses a record itself)."""
    return app.topic(settings.topic_events, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
