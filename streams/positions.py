"""The worker's positions in `agent.events.v1`, kept in DynamoDB beside what it applied, so that
a worker whose consumer group has no offsets (a new group, or offsets expired or reset) starts
where the tables are instead of reading every applied event again.

- While it runs, a worker saves every WORKER_POSITIONS_EVERY seconds, for each partition it
  holds, the first offset whose record is not done: every record before it is applied and its
  reply published (a record is acked only then), and the key and seq of the record before it.
- Before its Faust app joins the group, a worker compares the group's committed offsets with the
  saved positions. Where a position is ahead (or the group has none), it reads the record before
  that position from the topic; when its key and seq match (the topic is the one the position
  was taken on, not a recreated one), it commits the position for the group, and Faust starts
  there. A group with members already refuses that commit: they have offsets of their own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from agentstream.adapters.kafka.client import KafkaClients, seq_of
from agentstream.adapters.dynamo.position_store import Position, PositionStore
from agentstream.streams.offsets import Offsets

log = structlog.get_logger(__name__)
READ_TIMEOUT_S = 5.0


class PositionKeeper:
    """The worker's done records per partition, and the saving of its positions."""

    def __init__(self, store: PositionStore, topic: str) -> None:
        self._store = store
        self._topic = topic
        self._offsets = Offsets()
        self._saving: asyncio.Task[None] | None = None

    def take(self, tp: TopicPartition, offset: int, key: bytes | None, headers: Any) -> None:
        """A record read; its key and headers become the marker of a saved position, read only
        when one is saved (not once a record)."""
        self._offsets.take(tp, offset, (key, headers))

    def done(self, tp: TopicPartition, offset: int) -> None:
        self._offsets.done(tp, offset)

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self._offsets.forget(partitions)

    async def save(self) -> None:
        """Save the positions that moved since the last save (those behind a record without a
        key and seq are left: they could not be checked later)."""
        moved = self._offsets.advanced()
        positions = {tp.partition: at for tp, n in moved.items()
                     if tp.topic == self._topic and (at := _position(n, self._offsets.marker(tp))) is not None}
        if positions:
            await self._store.save(self._topic, positions)
        self._offsets.committed(moved)

    def start(self, every_s: float) -> None:
        """Save every `every_s` seconds until `stop()`."""
        self._saving = asyncio.create_task(self._every(every_s))

    async def stop(self) -> None:
        """Stop the saves and save what the last jobs finished."""
        if self._saving is not None:
            self._saving.cancel()
            await asyncio.gather(self._saving, return_exceptions=True)
        await self._save_logged()

    async def _every(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self._save_logged()

    async def _save_logged(self) -> None:
        """A failed save is logged and tried again at the next one (a position saved late only
        means more to read again)."""
        try:
            await self.save()
        except Exception as exc:
            log.warning("worker.positions_not_saved", error=f"{type(exc).__name__}: {exc}"[:300])


def _position(offset: int, marker: tuple[bytes | None, Any] | None) -> Position | None:
    """The position `offset` with the key and seq of the record before it, if it had both."""
    key, headers = marker or (None, None)
    known = seq_of(headers)
    return Position(offset, key.decode("utf-8", "replace"), known[0]) if key is not None and known is not None else None


async def resume_group(kafka: KafkaClients, group: str, topic: str, store: PositionStore) -> dict[int, int]:
    """Commit for the worker's `group` the saved positions of `topic` that are ahead of its offsets
    and match the topic; the partitions moved, with their offsets. Any failure leaves the group as
    it was."""
    consumer = kafka.consumer(group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
        return await _resume(consumer, topic, store)
    except Exception as exc:  # e.g. a group with members refuses the commit; Faust reports a Kafka that is down
        log.warning("worker.resume_skipped", error=f"{type(exc).__name__}: {exc}"[:300])
        return {}
    finally:
        await consumer.stop()


async def _resume(consumer: AIOKafkaConsumer, topic: str, store: PositionStore) -> dict[int, int]:
    saved = await store.load(topic)
    ahead: dict[TopicPartition, int] = {}
    for partition, at in saved.items():
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        committed = await consumer.committed(tp)
        if committed is not None and committed >= at.offset:
            continue
        if await _record_matches(consumer, tp, at):
            ahead[tp] = at.offset
        else:
            log.warning("worker.position_not_in_topic", partition=partition, offset=at.offset)
    if ahead:
        consumer.assign(list(ahead))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ahead.items()})
        log.info("worker.resumed", offsets={f"{tp.partition}": n for tp, n in ahead.items()})
    return {tp.partition: n for tp, n in ahead.items()}


async def _record_matches(consumer: AIOKafkaConsumer, tp: TopicPartition, at: Position) -> bool:
    """Whether the record before the position has the key and seq saved with it."""
    if at.offset < 1:
        return False
    consumer.seek(tp, at.offset - 1)
    try:
        record = await asyncio.wait_for(consumer.getone(tp), READ_TIMEOUT_S)
    except (KafkaError, asyncio.TimeoutError):  # no record there (yet)
        return False
    known = seq_of(record.headers)  # a record gone (retention, another topic) reads as one further on
    return record.offset == at.offset - 1 and record.key == at.key.encode() and known is not None and known[0] == at.seq
