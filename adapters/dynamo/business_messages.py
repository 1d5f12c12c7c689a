"""A business's customer messages, newest first, through the messages table's
businessId-timestamp-index (no scan of the events table)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.adapters.dynamo.tables import MESSAGES_BY_BUSINESS, has_index
from agentstream.settings import Tables


class NoMessagesIndex(LookupError):
    """The messages table lacks the index that finds a business's messages (`agentstream setup` adds it)."""


async def customer_messages(ddb: Any, tables: Tables, business_id: str, since: str | None = None,
                            page_size: int = 200) -> AsyncIterator[dict[str, Any]]:
    """The business's customer ("user") messages as the messages projection holds them, newest
    first, from `since` (an ISO timestamp as the log writes them) on; read page by page, so a
    caller that stops early reads no further."""
    if not await has_index(ddb, tables.messages, MESSAGES_BY_BUSINESS):
        raise NoMessagesIndex(f"the table {tables.messages} has no {MESSAGES_BY_BUSINESS}: run `agentstream setup`")
    condition, values = "businessId = :b", {":b": business_id, ":user": "user"}
    if since:
        condition += " AND #ts >= :since"
        values[":since"] = since
    kwargs: dict[str, Any] = {
        "TableName": tables.messages, "IndexName": MESSAGES_BY_BUSINESS, "KeyConditionExpression": condition,
        "FilterExpression": "#type = :user", "ExpressionAttributeValues": to_item(values),
        "ExpressionAttributeNames": {"#type": "type", **({"#ts": "timestamp"} if since else {})},
        "ScanIndexForward": False, "Limit": page_size,
    }
    while True:
        resp = await ddb.query(**kwargs)
        for item in resp.get("Items", []):
            yield from_item(item)
        if "LastEvaluatedKey" not in resp:
            return
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
