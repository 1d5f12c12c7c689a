"""The erasure's reads and deletes (`forget`, streams/forget.py, and its receipt's check,
streams/erasure.py), all on one customer's own items: the tombstone, the customer's log keys,
deletes by key (25 to a BatchWriteItem), consistent existence checks by key, and a customer's
items of a table found through an index keyed by businessId or, without one, a filtered scan.
"""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import batch_write, error_code, existing_keys, query_all, scan_all, to_item

Key = dict[str, Any]


class ErasureStore:
    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb

    async def put_tombstone(self, table: str, key: Key, forgotten_at: str) -> None:
        await self._ddb.put_item(TableName=table, Item=to_item({**key, "forgottenAt": forgotten_at}))

    async def keep_erased_ids(self, table: str, key: Key, hashes: list[str]) -> None:
        """Add the hashes of erased messages' external ids to the tombstone (a string set)."""
        for start in range(0, len(hashes), 1000):
            await self._ddb.update_item(TableName=table, Key=to_item(key), UpdateExpression="ADD erasedIds :h",
                                        ExpressionAttributeValues={":h": {"SS": hashes[start:start + 1000]}})

    async def has(self, table: str, key: Key) -> bool:
        """Whether the item is there (a consistent read)."""
        return "Item" in await self._ddb.get_item(TableName=table, Key=to_item(key), ConsistentRead=True)

    async def log_keys(self, table: str, stream: str, consistent: bool = False) -> list[Key]:
        """The keys (streamId, seq) of a stream's events."""
        return await query_all(self._ddb, TableName=table, KeyConditionExpression="streamId = :s",
                               ExpressionAttributeValues=to_item({":s": stream}), ProjectionExpression="streamId, seq",
                               **({"ConsistentRead": True} if consistent else {}))

    async def delete(self, table: str, keys: list[Key]) -> int:
        """Delete the items of `keys` (whether or not they exist); how many keys."""
        for start in range(0, len(keys), 25):
            await batch_write(self._ddb, {table: [{"DeleteRequest": {"Key": to_item(k)}} for k in keys[start:start + 25]]})
        return len(keys)

    async def existing(self, table: str, keys: list[Key]) -> list[Key]:
        """Those of `keys` whose item exists (consistent reads)."""
        return await existing_keys(self._ddb, table, keys)

    async def customer_items(self, table: str, business_id: str, user_id: str, index: str | None = None) -> list[Key]:
        """The customer's items of a table: a Query of `index` (keyed by businessId) filtered by
        userId, or a consistent filtered scan when there is no such index."""
        values = to_item({":b": business_id, ":u": user_id})
        if index is not None:
            try:
                return await query_all(self._ddb, TableName=table, IndexName=index, KeyConditionExpression="businessId = :b",
                                       FilterExpression="userId = :u", ExpressionAttributeValues=values)
            except Exception as exc:
                if error_code(exc) not in ("ValidationException", "ResourceNotFoundException"):
                    raise
        return await scan_all(self._ddb, TableName=table, FilterExpression="businessId = :b AND userId = :u",
                              ExpressionAttributeValues=values, ConsistentRead=True)
