"""The reconciliation a bridge asked for and no run has covered yet: one item of the leases table.

Item `reconcile:pending`: `since` (ISO time the lost window starts, or FULL for every
conversation; asks merge to the earliest) and `asks` (how many asks it holds). A run that
covered it deletes it only if no ask came in meanwhile (`asks` unchanged).
"""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import error_code, from_item, to_item

KEY = "reconcile:pending"
FULL = "-"  # the whole table; sorts before every ISO time, so it wins a merge


class PendingReconcile:
    def __init__(self, ddb: Any, leases_table: str) -> None:
        self._ddb = ddb
        self._table = leases_table

    async def ask(self, since: str) -> None:
        """Record an ask (merged with a pending one: the earliest start stays)."""
        key = to_item({"shardId": KEY})
        await self._ddb.update_item(TableName=self._table, Key=key,
                                    UpdateExpression="ADD asks :one SET since = if_not_exists(since, :s)",
                                    ExpressionAttributeValues=to_item({":one": 1, ":s": since}))
        await self._conditional(update_item=dict(Key=key, UpdateExpression="SET since = :s", ConditionExpression="since > :s",
                                                 ExpressionAttributeValues=to_item({":s": since})))

    async def get(self) -> tuple[str, int] | None:
        """The pending ask: (since, asks), or None."""
        resp = await self._ddb.get_item(TableName=self._table, Key=to_item({"shardId": KEY}), ConsistentRead=True)
        if "Item" not in resp:
            return None
        item = from_item(resp["Item"])
        return str(item["since"]), int(item.get("asks", 0))

    async def done(self, asked: tuple[str, int]) -> None:
        """A run covered `asked`: forget it, unless another ask came in since it was read."""
        await self._conditional(delete_item=dict(Key=to_item({"shardId": KEY}), ConditionExpression="asks = :a",
                                                 ExpressionAttributeValues=to_item({":a": asked[1]})))

    async def _conditional(self, **call: dict[str, Any]) -> None:
        (operation, kwargs), = call.items()
        try:
            await getattr(self._ddb, operation)(TableName=self._table, **kwargs)
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
