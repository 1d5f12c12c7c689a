"""Snapshots of a consumer's in-memory state with the offsets it had consumed, in DynamoDB.

A snapshot is written as numbered chunks (an item holds 400 KB at most) under an id of its own,
then made current by one write of its head item (part 0: the id, the chunk count, the offsets),
so a reader sees a whole snapshot or the previous one, never a mix; the chunks of the snapshot
it replaced are deleted after. Each blob carries an HMAC (AGENTSTREAM_SECRET_KEY) so a state
that was not written by us is never loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from agentstream.adapters.dynamo import batch_write

CHUNK_BYTES = 300_000
HEAD = 0


@dataclass(frozen=True)
class Snapshot:
    blob: bytes
    offsets: dict[str, int]  # "topic/partition" -> next offset to read
    version: str


class SnapshotStore:
    def __init__(self, ddb: Any, table: str, secret: str | None) -> None:
        self._ddb = ddb
        self._table = table
        self._key = hashlib.sha256(b"agentstream-snapshots:" + (secret or "").encode()).digest()

    def _sign(self, blob: bytes) -> str:
        return hmac.new(self._key, blob, hashlib.sha256).hexdigest()

    async def save(self, name: str, blob: bytes, offsets: dict[str, int], version: str) -> None:
        """Write the chunks, then point the head at them; the replaced chunks are deleted."""
        sid = uuid.uuid4().hex
        chunks = [blob[i:i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        puts = [{"PutRequest": {"Item": {"snapshotKey": {"S": f"{name}#{sid}"}, "part": {"N": str(i)},
                                         "data": {"B": chunk}}}} for i, chunk in enumerate(chunks)]
        for i in range(0, len(puts), 25):
            await batch_write(self._ddb, {self._table: puts[i:i + 25]})
        head = {"snapshotKey": {"S": name}, "part": {"N": str(HEAD)}, "snapshotId": {"S": sid},
                "chunks": {"N": str(len(chunks))}, "signature": {"S": self._sign(blob)}, "version": {"S": version},
                "offsets": {"M": {k: {"N": str(v)} for k, v in offsets.items()}}}
        old = (await self._ddb.put_item(TableName=self._table, Item=head, ReturnValues="ALL_OLD")).get("Attributes")
        if old and old.get("snapshotId", {}).get("S") and old["snapshotId"]["S"] != sid:
            await self._delete_chunks(name, old["snapshotId"]["S"], int(old["chunks"]["N"]))

    async def load(self, name: str) -> Snapshot | None:
        """The current snapshot, or None (none yet, or one that does not verify)."""
        for _ in range(3):  # a concurrent save may delete the chunks just pointed at: read the head again
            head = (await self._ddb.get_item(TableName=self._table, Key={"snapshotKey": {"S": name}, "part": {"N": "0"}},
                                             ConsistentRead=True)).get("Item")
            if not head:
                return None
            sid, count = head["snapshotId"]["S"], int(head["chunks"]["N"])
            items = await self._chunks(f"{name}#{sid}")
            parts = sorted(items, key=lambda i: int(i["part"]["N"]))
            if len(parts) != count:
                continue
            blob = b"".join(bytes(p["data"]["B"]) for p in parts)
            if not hmac.compare_digest(self._sign(blob), head["signature"]["S"]):
                return None
            offsets = {k: int(v["N"]) for k, v in head["offsets"]["M"].items()}
            return Snapshot(blob, offsets, head["version"]["S"])
        return None

    async def _chunks(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        async for page in self._ddb.get_paginator("query").paginate(
                TableName=self._table, ConsistentRead=True, KeyConditionExpression="snapshotKey = :k",
                ExpressionAttributeValues={":k": {"S": key}}):
            items.extend(page.get("Items", []))
        return items

    async def _delete_chunks(self, name: str, sid: str, count: int) -> None:
        deletes = [{"DeleteRequest": {"Key": {"snapshotKey": {"S": f"{name}#{sid}"}, "part": {"N": str(i)}}}}
                   for i in range(count)]
        for i in range(0, len(deletes), 25):
            await batch_write(self._ddb, {self._table: deletes[i:i + 25]})
