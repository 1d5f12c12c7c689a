"""Snapshots of a consumer's in-memory state with the offsets it had consumed, in DynamoDB.

A snapshot is written as numbered chunks (an item holds 400 KB at most) under an id of its own,
then made current by one write of its head item (part 0: the id, the chunk count, the offsets),
so a reader sees a whole snapshot or the previous one, never a mix; the chunks of the snapshot
it replaced are deleted after. The state is JSON (zlib-compressed), never code: each blob
carries an HMAC under a key derived from the secret key (the current one signs, the previous
ones still verify), so a state that was not written by us is never loaded. A head of another
format (the earlier pickled snapshots) is not read: the consumer starts over.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from agentstream.adapters.dynamo.client import batch_write
from agentstream.keys import KeyRing

CHUNK_BYTES = 300_000
HEAD = 0
FORMAT = "json-zlib-1"
PURPOSE = "agentstream/snapshots"


@dataclass(frozen=True)
class Snapshot:
    state: Any  # the JSON data saved
    offsets: dict[str, int]  # "topic/partition" -> next offset to read
    version: str


class SnapshotStore:
    def __init__(self, ddb: Any, table: str, keys: KeyRing) -> None:
        self._ddb = ddb
        self._table = table
        self._keys = keys.derived(PURPOSE)

    def _sign(self, blob: bytes, key: bytes | None = None) -> str:
        return hmac.new(key or self._keys[0], blob, hashlib.sha256).hexdigest()

    def _verifies(self, blob: bytes, signature: str) -> bool:
        return any(hmac.compare_digest(self._sign(blob, key).encode(), signature.encode()) for key in self._keys)

    async def save(self, name: str, state: Any, offsets: dict[str, int], version: str) -> None:
        """Write the chunks, then point the head at them; the replaced chunks are deleted."""
        blob = zlib.compress(orjson.dumps(state))
        sid = uuid.uuid4().hex
        chunks = [blob[i:i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        puts = [{"PutRequest": {"Item": {"snapshotKey": {"S": f"{name}#{sid}"}, "part": {"N": str(i)},
                                         "data": {"B": chunk}}}} for i, chunk in enumerate(chunks)]
        for i in range(0, len(puts), 25):
            await batch_write(self._ddb, {self._table: puts[i:i + 25]})
        head = {"snapshotKey": {"S": name}, "part": {"N": str(HEAD)}, "snapshotId": {"S": sid},
                "chunks": {"N": str(len(chunks))}, "signature": {"S": self._sign(blob)}, "version": {"S": version},
                "format": {"S": FORMAT}, "offsets": {"M": {k: {"N": str(v)} for k, v in offsets.items()}}}
        old = (await self._ddb.put_item(TableName=self._table, Item=head, ReturnValues="ALL_OLD")).get("Attributes")
        if old and old.get("snapshotId", {}).get("S") and old["snapshotId"]["S"] != sid:
            await self._delete_chunks(name, old["snapshotId"]["S"], int(old["chunks"]["N"]))

    async def load(self, name: str) -> Snapshot | None:
        """The current snapshot, or None (none yet, another format, or one that does not verify)."""
        for _ in range(3):  # a concurrent save may delete the chunks just pointed at: read the head again
            head = (await self._ddb.get_item(TableName=self._table, Key={"snapshotKey": {"S": name}, "part": {"N": "0"}},
                                             ConsistentRead=True)).get("Item")
            if not head or head.get("format", {}).get("S") != FORMAT:
                return None
            sid, count = head["snapshotId"]["S"], int(head["chunks"]["N"])
            items = await self._chunks(f"{name}#{sid}")
            parts = sorted(items, key=lambda i: int(i["part"]["N"]))
            if len(parts) != count:
                continue
            blob = b"".join(bytes(p["data"]["B"]) for p in parts)
            if not self._verifies(blob, head["signature"]["S"]):
                return None
            offsets = {k: int(v["N"]) for k, v in head["offsets"]["M"].items()}
            return Snapshot(orjson.loads(zlib.decompress(blob)), offsets, head["version"]["S"])
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
