"""Reads of the bookings read model (`ai-agent-bookings`, one row per appointment, indexed by
business and start) and of a customer's appointments state item."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import from_item, query_all, to_item
from agentstream.adapters.dynamo.tables import BOOKINGS_BY_START
from agentstream.settings import Tables


class BookingsTable:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self._ddb = ddb
        self._t = tables

    async def row(self, business_id: str, appointment_id: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(TableName=self._t.bookings, ConsistentRead=True,
                                        Key=to_item({"businessId": business_id, "appointmentId": appointment_id}))
        return from_item(resp["Item"]) if "Item" in resp else None

    async def between(self, business_id: str, start: str, end: str) -> list[dict[str, Any]]:
        """The business's appointments starting in [start, end) (UTC ISO), soonest first."""
        return await query_all(
            self._ddb, TableName=self._t.bookings, IndexName=BOOKINGS_BY_START,
            KeyConditionExpression="businessId = :b AND startsAt BETWEEN :s AND :e",
            ExpressionAttributeValues=to_item({":b": business_id, ":s": start, ":e": end}))

    async def customer(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        """The customer's appointments state item, None if they have none."""
        resp = await self._ddb.get_item(TableName=self._t.appointments, ConsistentRead=True,
                                        Key=to_item({"businessId": business_id, "userId": user_id}))
        return from_item(resp["Item"]) if "Item" in resp else None
