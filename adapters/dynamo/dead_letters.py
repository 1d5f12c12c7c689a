"""The dead-letter index: which events of a business are skipped, without scanning the log.

One item per business in the events table, `idem#<businessId>#dead-letters` (seq 0), holding
the eventIds of its skipped events in a string set. It is only an index: the log's
`EventSkipped` and `SkipRevoked` records say what is skipped, and `dlq list` checks each entry
against them. It carries no `eventId` attribute, so the bridge, reconcile and the eventId index
pass it by, and no user id (an erased customer's entries lead to no event and are dropped).
Cost: one GetItem per business listed; an item holds about 8 000 entries (400 KB).
"""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import from_item, scan_all, to_item
from agentstream.adapters.dynamo.event_store import idem_key

INDEX_KEY = "dead-letters"


class DeadLetterIndex:
    def __init__(self, ddb: Any, events_table: str) -> None:
        self._ddb = ddb
        self._table = events_table

    def _key(self, business_id: str) -> dict[str, Any]:
        return to_item({"streamId": idem_key(business_id, INDEX_KEY), "seq": 0})

    async def add(self, business_id: str, event_id: str) -> None:
        await self._ddb.update_item(TableName=self._table, Key=self._key(business_id), UpdateExpression="ADD skipped :e",
                                    ExpressionAttributeValues={":e": {"SS": [event_id]}})

    async def remove(self, business_id: str, event_id: str) -> None:
        await self._ddb.update_item(TableName=self._table, Key=self._key(business_id), UpdateExpression="DELETE skipped :e",
                                    ExpressionAttributeValues={":e": {"SS": [event_id]}})

    async def event_ids(self, business_id: str) -> list[str]:
        resp = await self._ddb.get_item(TableName=self._table, Key=self._key(business_id), ConsistentRead=True)
        return sorted(from_item(resp["Item"]).get("skipped", ())) if "Item" in resp else []


async def business_ids(ddb: Any, business_table: str) -> list[str]:
    """Every business (a scan of the small business-info table, keys only)."""
    items = await scan_all(ddb, TableName=business_table, ProjectionExpression="businessId")
    return sorted(str(i["businessId"]) for i in items)
