"""A DynamoDB client that counts what goes through it: calls per operation and items read."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any


def _items(resp: dict[str, Any]) -> int:
    if "Items" in resp:
        return len(resp["Items"])
    if "Responses" in resp:
        return sum(len(v) for v in resp["Responses"].values())
    return 1 if "Item" in resp else 0


class CountingDdb:
    """Wraps an aiobotocore DynamoDB client (paginators too): `calls` per operation, `read`
    items returned per operation, and `indexes` items returned per index queried."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.read: Counter[str] = Counter()
        self.indexes: Counter[str] = Counter()

    def record(self, operation: str, request: dict[str, Any], resp: dict[str, Any]) -> None:
        self.calls[operation] += 1
        self.read[operation] += _items(resp)
        if "IndexName" in request:
            self.indexes[request["IndexName"]] += _items(resp)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_read(self) -> int:
        return sum(self.read.values())

    def reset(self) -> None:
        self.calls.clear()
        self.read.clear()
        self.indexes.clear()

    def get_paginator(self, operation: str) -> Any:
        return _Paginator(self, operation, self._inner.get_paginator(operation))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        async def call(**kwargs: Any) -> Any:
            resp = await attr(**kwargs)
            self.record(name, kwargs, resp)
            return resp

        return call


class _Paginator:
    def __init__(self, owner: CountingDdb, operation: str, inner: Any) -> None:
        self._owner, self._operation, self._inner = owner, operation, inner

    def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        async def pages() -> AsyncIterator[dict[str, Any]]:
            async for page in self._inner.paginate(**kwargs):
                self._owner.record(self._operation, kwargs, page)
                yield page

        return pages()
