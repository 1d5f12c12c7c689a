"""The rows of the leases table (PK shardId): the bridges' shard leases and the timers' leases.

Plain items in and out; what a lease means (who holds it, until when, its checkpoint) is
streams/leases.py's. Every write is conditional, so two processes never both take a row: a
write that loses answers False instead of raising.
"""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import error_code, from_item, scan_all, to_item

KEY = "shardId"


class LeaseStore:
    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    async def read_all(self) -> list[dict[str, Any]]:
        return await scan_all(self._ddb, TableName=self._table, ConsistentRead=True)

    async def read(self, key: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(TableName=self._table, Key=to_item({KEY: key}), ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    async def create(self, item: dict[str, Any]) -> bool:
        """Write `item` if its row does not exist yet; False if it does."""
        return await self._put(item, "attribute_not_exists(shardId)", {}, {})

    async def acquire(self, item: dict[str, Any], seen_counter: int) -> bool:
        """Write `item` if the row is missing or still at the counter we read; False if someone was faster."""
        return await self._put(item, "attribute_not_exists(shardId) OR #c = :c", {"#c": "counter"}, {":c": seen_counter})

    async def write_if_held(self, item: dict[str, Any], owner: str, counter: int) -> bool:
        """Write `item` (a renewal, a checkpoint, a release) if the row is still `owner`'s at
        `counter`; False if it is not (the lease was lost)."""
        return await self._put(item, "#o = :o AND #c = :c", {"#c": "counter", "#o": "owner"}, {":o": owner, ":c": counter})

    async def delete(self, key: str) -> None:
        await self._ddb.delete_item(TableName=self._table, Key=to_item({KEY: key}))

    async def _put(self, item: dict[str, Any], condition: str, names: dict[str, str], values: dict[str, Any]) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": to_item(item), "ConditionExpression": condition}
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
            return False
