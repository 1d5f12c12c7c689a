"""`agent.events.v1` as a replay source: every record from the beginning of each partition up
to the end it had when the read started, grouped by conversation.

Kafka is transport, not the truth: the replayer drops what `forget` erased and reads a
conversation from the table when the topic lacks some of its events (retention, a lost batch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import TopicPartition
from pydantic import ValidationError

from agentstream.adapters.kafka.client import KafkaClients, loads
from agentstream.events import Event, UnknownSchemaVersion, parse_event

log = structlog.get_logger(__name__)


@dataclass
class TopicEvents:
    by_stream: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    records: int = 0
    unreadable: int = 0


async def read_topic_events(kafka: KafkaClients, topic: str, wants: Callable[[str], bool]) -> TopicEvents:
    """Every event of `topic` whose streamId `wants`, in partition order (duplicates kept)."""
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        numbers = (await kafka.partitions_of([topic])).get(topic)
        if not numbers:
            raise LookupError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        result = TopicEvents()
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=500)).items():
                for record in records:
                    if record.offset < ends[tp]:
                        _add(result, record.value, wants)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        log.info("replay.topic_read", topic=topic, records=result.records, streams=len(result.by_stream),
                 unreadable=result.unreadable)
        return result
    finally:
        await consumer.stop()


def _add(result: TopicEvents, raw: bytes, wants: Callable[[str], bool]) -> None:
    result.records += 1
    try:
        event = parse_event(loads(raw))
    except (ValueError, ValidationError, UnknownSchemaVersion) as exc:
        result.unreadable += 1  # the table still has it: the replayer reads gaps from there
        log.warning("replay.unreadable_record", error=f"{type(exc).__name__}: {exc}"[:300])
        return
    if wants(event.streamId):
        result.by_stream[event.streamId].append(event)
