"""Shard leases and checkpoints in the leases table, shared by every bridge process.

A lease item: shardId, owner, counter, expiresAt (epoch ms), checkpoint (last sequence number
published and acknowledged by Kafka), checkpointAt (when that record was appended to the log,
its `ingestedAt`: where a lost window starts), registeredAt, parentShardId, finished (the shard
ended and was read to its end). Every write is conditional on the owner and counter we last saw, so two bridges never
both believe they hold a shard. The rows are read and written by adapters/dynamo/lease_store.py; what
is here is who holds what and for how long.

A timer that one process of many runs at a time (session expiry, Gmail watch renewal) holds a
single named lease with `HeldLease`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentstream.events import iso, now_ms, utc_now


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


class LeaseRows(Protocol):
    """The leases table's rows (`adapters/dynamo/lease_store.LeaseStore`): conditional writes."""

    async def read_all(self) -> list[dict[str, Any]]: ...

    async def read(self, key: str) -> dict[str, Any] | None: ...

    async def create(self, item: dict[str, Any]) -> bool: ...

    async def acquire(self, item: dict[str, Any], seen_counter: int) -> bool: ...

    async def write_if_held(self, item: dict[str, Any], owner: str, counter: int) -> bool: ...

    async def delete(self, key: str) -> None: ...


class LeaseTable:
    def __init__(self, store: LeaseRows, owner: str, ttl_ms: int = 10_000) -> None:
        self._store = store
        self.owner = owner
        self.ttl_ms = ttl_ms

    async def all(self) -> dict[str, Lease]:
        return {i["shardId"]: Lease.from_item(i) for i in await self._store.read_all()}

    async def register(self, shard_id: str, parent: str | None) -> None:
        """Create the lease row of a newly discovered shard (no-op if it exists)."""
        lease = Lease(shard_id, parent=parent, registered_at=iso(utc_now()))
        await self._store.create(lease.item())

    async def acquire(self, lease: Lease) -> Lease | None:
        """Take an unowned or expired lease; None if someone else was faster."""
        taken = dataclasses.replace(lease, owner=self.owner, counter=lease.counter + 1,
                                    expires_at=now_ms() + self.ttl_ms, lock=asyncio.Lock())
        return taken if await self._store.acquire(taken.item(), lease.counter) else None

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
        """Hand a lease back on shutdown so another bridge takes it at once (a lease already
        lost is left to its new owner)."""
        def change(nxt: Lease) -> None:
            nxt.owner, nxt.expires_at = None, 0

        try:
            await self._advance(lease, change)
        except LeaseLost:
            pass

    async def _advance(self, lease: Lease, change: Any) -> None:
        """Write the lease's next version, changed by `change`. A write of ours cut short (a
        shutdown's cancellation) may have landed without our copy seeing its counter: if the
        row is still ours, our copy takes the row's state and the write is made again."""
        async with lease.lock:
            for _ in range(2):
                nxt = self._next(lease)
                change(nxt)
                if await self._store.write_if_held(nxt.item(), self.owner, lease.counter):
                    lease.counter, lease.expires_at = nxt.counter, nxt.expires_at
                    lease.checkpoint, lease.finished, lease.checkpoint_at = nxt.checkpoint, nxt.finished, nxt.checkpoint_at
                    return
                current = await self.get(lease.shard_id)
                if current is None or current.owner != self.owner:
                    break
                lease.counter, lease.checkpoint, lease.finished, lease.checkpoint_at = (
                    current.counter, current.checkpoint, current.finished, current.checkpoint_at)
            raise LeaseLost(lease.shard_id)

    def _next(self, lease: Lease) -> Lease:
        return dataclasses.replace(lease, owner=self.owner, counter=lease.counter + 1,
                                   expires_at=now_ms() + self.ttl_ms, lock=asyncio.Lock())

    async def delete(self, shard_id: str) -> None:
        await self._store.delete(shard_id)

    async def get(self, shard_id: str) -> Lease | None:
        item = await self._store.read(shard_id)
        return Lease.from_item(item) if item is not None else None


class HeldLease:
    """One named lease held across rounds by a timer that one process of many runs at a time:
    taken when it is free or expired, renewed at each round, handed back on stop."""

    def __init__(self, leases: LeaseTable, name: str) -> None:
        self._leases = leases
        self.name = name
        self._held: Lease | None = None

    async def hold(self) -> bool:
        """True if this process holds the lease now (renewed, or just taken); False while
        another holds it."""
        if self._held:
            try:
                await self._leases.renew(self._held)
                return True
            except LeaseLost:
                self._held = None
        current = await self._leases.get(self.name) or Lease(self.name)
        if current.available(now_ms()):
            self._held = await self._leases.acquire(current)
        return self._held is not None

    async def release(self) -> None:
        """Hand the lease back (on shutdown), so another process takes the timer at once."""
        if self._held:
            await self._leases.release(self._held)
            self._held = None
