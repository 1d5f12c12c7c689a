"""The usage table: one item per business and month (PK businessId, SK month `YYYY-MM`) whose
`spendMicros` the appends of the events that spent add to (side items, streams/spend.py), and
the marks of the owner's notices (`warnedAt`, `spentAt`), each set once."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import error_code, from_item, query_all, scan_all, to_item
from agentstream.adapters.dynamo.event_store import idem_key

SPENT = "spendMicros"


class UsageStore:
    """The usage table over DynamoDB (`UsageLedger`); `events`: the events table, whose
    idempotency namespace keeps a spend counted alone (`add_once`) from being counted twice."""

    def __init__(self, ddb: Any, table: str, events: str) -> None:
        self._ddb = ddb
        self._table = table
        self._events = events

    def location(self, business_id: str, month: str) -> tuple[str, dict[str, Any]]:
        return self._table, {"businessId": business_id, "month": month}

    async def item(self, business_id: str, month: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(TableName=self._table, Key=to_item({"businessId": business_id, "month": month}),
                                        ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    async def spent(self, business_id: str, month: str) -> int:
        return int((await self.item(business_id, month) or {}).get(SPENT, 0))

    async def mark(self, business_id: str, month: str, attribute: str, at: str) -> bool:
        try:
            await self._ddb.update_item(
                TableName=self._table, Key=to_item({"businessId": business_id, "month": month}),
                UpdateExpression="SET #m = :at", ConditionExpression="attribute_not_exists(#m)",
                ExpressionAttributeNames={"#m": attribute}, ExpressionAttributeValues=to_item({":at": at}))
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def set_spent(self, business_id: str, month: str, micros: int) -> None:
        await self._ddb.update_item(
            TableName=self._table, Key=to_item({"businessId": business_id, "month": month}),
            UpdateExpression="SET #s = :v", ExpressionAttributeNames={"#s": SPENT},
            ExpressionAttributeValues=to_item({":v": micros}))

    async def add_once(self, business_id: str, month: str, micros: int, key: str) -> bool:
        marker = {"streamId": idem_key(business_id, f"spend:{key}"), "seq": 0, "month": month, SPENT: micros}
        try:
            await self._ddb.transact_write_items(TransactItems=[
                {"Put": {"TableName": self._events, "Item": to_item(marker), "ConditionExpression": "attribute_not_exists(streamId)"}},
                {"Update": {"TableName": self._table, "Key": to_item({"businessId": business_id, "month": month}),
                            "UpdateExpression": "ADD #s :n", "ExpressionAttributeNames": {"#s": SPENT},
                            "ExpressionAttributeValues": to_item({":n": micros})}}])
        except Exception as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

    async def months(self, business_id: str) -> list[dict[str, Any]]:
        """The business's usage items, oldest month first."""
        return await query_all(self._ddb, TableName=self._table, KeyConditionExpression="businessId = :b",
                               ExpressionAttributeValues=to_item({":b": business_id}))

    async def spent_months(self) -> list[dict[str, Any]]:
        """The items of the months that ran out of budget and are not released yet (a Scan of a
        table of one item per business and month)."""
        return await scan_all(self._ddb, TableName=self._table, FilterExpression="attribute_exists(spentAt)",
                              ProjectionExpression="businessId, #m", ExpressionAttributeNames={"#m": "month"})

    async def clear_marks(self, business_id: str, month: str, attributes: tuple[str, ...]) -> None:
        names = {f"#a{i}": a for i, a in enumerate(attributes)}
        await self._ddb.update_item(TableName=self._table, Key=to_item({"businessId": business_id, "month": month}),
                                    UpdateExpression="REMOVE " + ", ".join(names), ExpressionAttributeNames=names)
