"""Shard leases and checkpoints in the leases table, shared by every bridge process.

A lease item: shardId, owner, counter, expiresAt (epoch ms), checkpoint (last sequence number
published and acknowledged by Kafka), checkpointAt (when that record was appended to the log,
its `ingestedAt`: where a lost window starts), registeredAt, parentShardId, finished (the shard
ended and was read to its end). Every write is conditional on the owner and counter we last saw, so two bridges never
both believe they hold a shard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from agentstream.adapters.dynamo import error_code, from_item, scan_all, to_item
from agentstream.events import iso, utc_now


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Lease:
    shard_id: str
    owner: str | None = None
    counter: int = 0
    expires_at: int = 0
    checkpoint: str | None = None
    parent: str | None = None
    finished: bool = False
    checkpoint_at: str | None = None  # ISO: when the checkpointed record was appended
    registered_at: str | None = None  # ISO: when the shard was first seen
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Lease":
        return cls(
            shard_id=item["shardId"],
            owner=item.get("owner"),
            counter=int(item.get("counter", 0)),
            expires_at=int(item.get("expiresAt", 0)),
            checkpoint=item.get("checkpoint"),
            parent=item.get("parentShardId"),
            finished=bool(item.get("finished", False)),
            checkpoint_at=item.get("checkpointAt"),
            registered_at=item.get("registeredAt"),
        )

    def item(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "shardId": self.shard_id,
            "counter": self.counter,
            "expiresAt": self.expires_at,
            "finished": self.finished,
        }
        for key, value in (("owner", self.owner), ("checkpoint", self.checkpoint), ("parentShardId", self.parent),
                           ("checkpointAt", self.checkpoint_at), ("registeredAt", self.registered_at)):
            if value is not None:
                data[key] = value
        return data

    def available(self, at_ms: int) -> bool:
        return not self.finished and (self.owner is None or self.expires_at < at_ms)


class LeaseLost(RuntimeError):
    """Another bridge took the lease (ours expired); stop reading the shard."""


class LeaseTable:
    def __init__(self, ddb: Any, table: str, owner: str, ttl_ms: int = 10_000) -> None:
        self._ddb = ddb
        self._table = table
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def all(self) -> dict[str, Lease]:
        items = await scan_all(self._ddb, TableName=self._table, ConsistentRead=True)
        return {i["shardId"]: Lease.from_item(i) for i in items}

    async def register(self, shard_id: str, parent: str | None) -> None:
        """Create the lease row of a newly discovered shard (no-op if it exists)."""
        lease = Lease(shard_id, parent=parent, registered_at=iso(utc_now()))
        await self._put(lease, "attribute_not_exists(shardId)", {}, ignore_conflict=True)

    async def acquire(self, lease: Lease) -> Lease | None:
        """Take an unowned or expired lease; None if someone else was faster."""
        taken = dataclasses.replace(lease, owner=self.owner, counter=lease.counter + 1,
                                    expires_at=now_ms() + self.ttl_ms, lock=asyncio.Lock())
        ok = await self._put(taken, "attribute_not_exists(shardId) OR #c = :c", {":c": lease.counter}, ignore_conflict=True)
        return taken if ok else None

    async def renew(self, lease: Lease) -> None:
        await self._advance(lease, lambda nxt: None)

    async def checkpoint(self, lease: Lease, sequence_number: str, finished: bool = False, at: str | None = None) -> None:
        """Move the checkpoint (`at`: when its record was appended, if known)."""
        def change(nxt: Lease) -> None:
            nxt.checkpoint = sequence_number or nxt.checkpoint
            nxt.checkpoint_at = at or nxt.checkpoint_at
            nxt.finished = finished

        await self._advance(lease, change)

    async def release(self, lease: Lease) -> None:
        """Hand a lease back on shutdown so another bridge takes it at once. A checkpoint cut
        short by the shutdown may have landed without our copy seeing its counter: if the row
        is still ours, it is released at the counter it has."""
        async with lease.lock:
            for _ in range(2):
                nxt = self._next(lease)
                nxt.owner, nxt.expires_at = None, 0
                try:
                    await self._put(nxt, "#o = :o AND #c = :c", {":o": self.owner, ":c": lease.counter})
                    return
                except LeaseLost:
                    current = await self.get(lease.shard_id)
                    if current is None or current.owner != self.owner:
                        return
                    lease.counter, lease.checkpoint = current.counter, current.checkpoint

    async def _advance(self, lease: Lease, change: Any) -> None:
        async with lease.lock:
            nxt = self._next(lease)
            change(nxt)
            await self._put(nxt, "#o = :o AND #c = :c", {":o": self.owner, ":c": lease.counter})
            lease.counter, lease.expires_at = nxt.counter, nxt.expires_at
            lease.checkpoint, lease.finished, lease.checkpoint_at = nxt.checkpoint, nxt.finished, nxt.checkpoint_at

    def _next(self, lease: Lease) -> Lease:
        return dataclasses.replace(lease, owner=self.owner, counter=lease.counter + 1,
                                   expires_at=now_ms() + self.ttl_ms, lock=asyncio.Lock())

    async def _put(self, lease: Lease, condition: str, values: dict[str, Any], ignore_conflict: bool = False) -> bool:
        names = {k: v for k, v in (("#c", "counter"), ("#o", "owner")) if k in condition}
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": to_item(lease.item()), "ConditionExpression": condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = to_item(values)
        try:
            await self._ddb.put_item(**kwargs)
            return True
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            if ignore_conflict:
                return False
            raise LeaseLost(lease.shard_id) from None

    async def delete(self, shard_id: str) -> None:
        await self._ddb.delete_item(TableName=self._table, Key=to_item({"shardId": shard_id}))

    async def get(self, shard_id: str) -> Lease | None:
        resp = await self._ddb.get_item(TableName=self._table, Key=to_item({"shardId": shard_id}), ConsistentRead=True)
        return Lease.from_item(from_item(resp["Item"])) if "Item" in resp else None
