"""The reminders' due index: the customers with a pending reminder, by shard and due time.

The reminders fold writes `dueShard` and `nextDueAt` on a customer's state item (table
`ai-agent-reminders`) only while a reminder is pending, so the GSI `dueShard-nextDueAt-index`
is sparse and a `nextDueAt <= now` query reads only the due customers. `MemoryDueIndex` is the
same over the in-memory tables (tests)."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import query_all, to_item
from agentstream.adapters.memory_stores import MemoryTables

REMINDERS_DUE = "dueShard-nextDueAt-index"


class DynamoDueIndex:
    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    async def due(self, shard: int, until: str) -> list[dict[str, Any]]:
        return await query_all(self._ddb, TableName=self._table, IndexName=REMINDERS_DUE,
                               KeyConditionExpression="dueShard = :d AND nextDueAt <= :t",
                               ExpressionAttributeValues=to_item({":d": shard, ":t": until}))


class MemoryDueIndex:
    def __init__(self, tables: MemoryTables, table: str) -> None:
        self._tables = tables
        self._table = table

    async def due(self, shard: int, until: str) -> list[dict[str, Any]]:
        return [i for i in self._tables.query(self._table, REMINDERS_DUE, shard) if i["nextDueAt"] <= until]
