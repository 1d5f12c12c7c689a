"""Replay's own writes and reads of the projection tables (streams/replay.py): unconditional puts
batched across conversations for a rebuild into empty tables, and the consistent read of one
live item that `replay --verify` compares with what the fold gives."""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.dynamo.client import batch_write, from_item, to_item


class BatchWriter:
    """Unconditional puts gathered across conversations, 25 to a BatchWriteItem call."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._calls: set[asyncio.Task[None]] = set()

    def add(self, table: str, items: list[dict[str, Any]]) -> None:
        self._pending += [(table, i) for i in items]
        while len(self._pending) >= 25:
            self._send(self._pending[:25])
            self._pending = self._pending[25:]

    def _send(self, chunk: list[tuple[str, dict[str, Any]]]) -> None:
        task = asyncio.create_task(self._write(chunk))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _write(self, chunk: list[tuple[str, dict[str, Any]]]) -> None:
        pending: dict[str, list[dict[str, Any]]] = {}
        for table, item in chunk:
            pending.setdefault(table, []).append({"PutRequest": {"Item": to_item(item)}})
        await batch_write(self._ddb, pending)

    async def flush(self) -> None:
        if self._pending:
            self._send(self._pending)
            self._pending = []
        while self._calls:
            await asyncio.gather(*list(self._calls))


class LiveItems:
    """Items of the live tables as they are now (consistent reads)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(TableName=table, Key=to_item(key), ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None
