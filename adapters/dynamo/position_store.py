"""Where a consumer of a topic has got to, per partition, kept in the leases table.

One row per partition, `position:<consumer>:<topic>/<partition>`: the offset to read next
(every record before it is done) and the key and seq of the record just before it, which tell
a reader later whether the topic is still the one the position was taken on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentstream.adapters.dynamo.client import scan_all, to_item
from agentstream.adapters.dynamo.lease_store import KEY
from agentstream.events import iso, utc_now

PREFIX = "position:"


@dataclass(frozen=True)
class Position:
    offset: int  # the next record to read
    key: str  # the key and seq of the record at offset - 1
    seq: int


class PositionStore:
    def __init__(self, ddb: Any, table: str, consumer: str) -> None:
        self._ddb = ddb
        self._table = table
        self._consumer = consumer

    def _prefix(self, topic: str) -> str:
        return f"{PREFIX}{self._consumer}:{topic}/"

    async def save(self, topic: str, positions: dict[int, Position]) -> None:
        """Write each partition's position (the last write wins: a lower one only reads more)."""
        for partition, at in positions.items():
            item = {KEY: f"{self._prefix(topic)}{partition}", "offset": at.offset, "key": at.key, "seq": at.seq,
                    "savedAt": iso(utc_now())}
            await self._ddb.put_item(TableName=self._table, Item=to_item(item))

    async def load(self, topic: str) -> dict[int, Position]:
        """Every saved partition's position (the leases table is small: a scan)."""
        prefix = self._prefix(topic)
        rows = await scan_all(self._ddb, TableName=self._table, ConsistentRead=True,
                              FilterExpression="begins_with(#k, :p)", ExpressionAttributeNames={"#k": KEY},
                              ExpressionAttributeValues={":p": {"S": prefix}})
        return {int(row[KEY][len(prefix):]): Position(int(row["offset"]), str(row["key"]), int(row["seq"]))
                for row in rows}
