"""The usage table in memory (`UsageLedger`), on the `MemoryTables` the memory event store uses,
so a reply's side item and the ledger's reads meet in the same item (adapters/dynamo/usage.py
is the DynamoDB one)."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.event_store import idem_key
from agentstream.adapters.memory_stores import Cancelled, MemoryTables, Op

SPENT = "spendMicros"


class MemoryUsage:
    def __init__(self, tables: MemoryTables) -> None:
        self._db = tables
        self._table = tables.names.usage
        self._events = tables.names.events

    def location(self, business_id: str, month: str) -> tuple[str, dict[str, Any]]:
        return self._table, {"businessId": business_id, "month": month}

    async def item(self, business_id: str, month: str) -> dict[str, Any] | None:
        return self._db.get(self._table, {"businessId": business_id, "month": month})

    async def spent(self, business_id: str, month: str) -> int:
        return int((await self.item(business_id, month) or {}).get(SPENT, 0))

    async def mark(self, business_id: str, month: str, attribute: str, at: str) -> bool:
        key = {"businessId": business_id, "month": month}
        try:
            self._db.transact([Op(self._table, key, lambda item: attribute not in (item or {}),
                                  lambda item: {**(item or key), attribute: at})])
        except Cancelled:
            return False
        return True

    async def set_spent(self, business_id: str, month: str, micros: int) -> None:
        key = {"businessId": business_id, "month": month}
        self._db.put(self._table, {**(self._db.get(self._table, key) or key), SPENT: micros})

    async def add_once(self, business_id: str, month: str, micros: int, key: str) -> bool:
        marker = {"streamId": idem_key(business_id, f"spend:{key}"), "seq": 0}
        usage = {"businessId": business_id, "month": month}
        try:
            self._db.transact([
                Op(self._events, marker, lambda item: item is None, lambda _: {**marker, "month": month, SPENT: micros}),
                Op(self._table, usage, lambda _: True, lambda item: {**(item or usage), SPENT: (item or {}).get(SPENT, 0) + micros}),
            ])
        except Cancelled:
            return False
        return True

    async def spent_months(self) -> list[dict[str, Any]]:
        return [{"businessId": i["businessId"], "month": i["month"]} for i in self._db.rows(self._table) if "spentAt" in i]

    async def clear_marks(self, business_id: str, month: str, attributes: tuple[str, ...]) -> None:
        key = {"businessId": business_id, "month": month}
        item = self._db.get(self._table, key)
        if item is not None:
            self._db.put(self._table, {k: v for k, v in item.items() if k not in attributes})
