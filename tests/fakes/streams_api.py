"""A scripted, in-process fake of the DynamoDB Streams API: several shards, parents that
close, children that appear mid-run, iterators that expire and positions that are trimmed.
ministack gives each stream one shard that never closes, so lineage is tested against this."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from agentstream.adapters.dynamo.client import to_item


def client_error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, op)


@dataclass
class FakeShard:
    shard_id: str
    parent: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trimmed_before: int = 0  # records with index < this are gone


class FakeStreams:
    """Implements describe_stream, get_shard_iterator and get_records like the real service."""

    def __init__(self, arn: str = "arn:aws:dynamodb:us-east-1:0:table/fake/stream/1") -> None:
        self.arn = arn
        self.shards: dict[str, FakeShard] = {}
        self.visible: list[str] = []
        self._seq = itertools.count(1)
        self._iterators: dict[str, tuple[str, int]] = {}
        self._ids = itertools.count(1)
        self.expire_next: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    # ---- scripting -------------------------------------------------------------------------
    def add_shard(self, shard_id: str, parent: str | None = None) -> FakeShard:
        self.shards[shard_id] = FakeShard(shard_id, parent)
        self.visible.append(shard_id)
        return self.shards[shard_id]

    def restart(self) -> None:
        """A local server restarted on its saved state: the same stream and shards, none of their
        records, and old iterators still accepted (they point past the new records, no error)."""
        for shard in self.shards.values():
            shard.records.clear()
            shard.trimmed_before = 0

    def put(self, shard_id: str, stream: str, seq: int) -> None:
        image = {"streamId": stream, "seq": seq, "eventId": f"{stream}-{seq}", "type": "MessageReceived"}
        number = f"{next(self._seq):021d}"
        self.shards[shard_id].records.append(
            {"eventName": "INSERT", "dynamodb": {"NewImage": to_item(image), "SequenceNumber": number}}
        )

    # ---- API -------------------------------------------------------------------------------
    async def describe_stream(self, StreamArn: str, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        shards = []
        for sid in self.visible:
            shard = self.shards[sid]
            first = shard.records[0]["dynamodb"]["SequenceNumber"] if shard.records else None  # as the local server says it
            entry: dict[str, Any] = {"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": first} if first else {}}
            if shard.parent:
                entry["ParentShardId"] = shard.parent
            shards.append(entry)
        return {"StreamDescription": {"StreamArn": StreamArn, "Shards": shards}}

    async def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                                 SequenceNumber: str | None = None) -> dict[str, Any]:
        shard = self.shards[ShardId]
        if ShardIteratorType == "TRIM_HORIZON":
            pos = shard.trimmed_before
        elif ShardIteratorType == "LATEST":
            pos = len(shard.records)
        else:
            numbers = [r["dynamodb"]["SequenceNumber"] for r in shard.records]
            if SequenceNumber not in numbers or numbers.index(SequenceNumber) < shard.trimmed_before:
                raise client_error("TrimmedDataAccessException", "GetShardIterator")
            pos = numbers.index(SequenceNumber) + 1
        return {"ShardIterator": self._new_iterator(ShardId, pos)}

    async def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        await asyncio.sleep(0)
        if ShardIterator not in self._iterators:
            raise client_error("ExpiredIteratorException", "GetRecords")
        shard_id, pos = self._iterators.pop(ShardIterator)
        self.calls.append(("get_records", shard_id))
        if shard_id in self.expire_next:
            self.expire_next.discard(shard_id)
            raise client_error("ExpiredIteratorException", "GetRecords")
        shard = self.shards[shard_id]
        batch = shard.records[pos:pos + Limit]
        nxt = pos + len(batch)
        if shard.closed and nxt >= len(shard.records):
            return {"Records": batch}
        return {"Records": batch, "NextShardIterator": self._new_iterator(shard_id, nxt)}

    def _new_iterator(self, shard_id: str, pos: int) -> str:
        token = f"it-{next(self._ids)}"
        self._iterators[token] = (shard_id, pos)
        return token


class FakeProducer:
    """Collects what would go to Kafka; each send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> "asyncio.Future[None]":
        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> "FakeBatch":
        return FakeBatch()

    async def send_batch(self, batch: "FakeBatch", topic: str, *, partition: int) -> "asyncio.Future[None]":
        for key, value in batch.records:
            await self.send(topic, key, value)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def flush(self) -> None:
        return None


class FakeBatch:
    """A Kafka batch builder that never fills up."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.headers: list[list[tuple[str, bytes]]] = []

    def append(self, *, timestamp: float | None, key: bytes, value: bytes, headers: Any = ()) -> bool:
        self.records.append((key, value))
        self.headers.append(list(headers))
        return True
