"""Business info, system instructions and dynamic business RAG, read with a short cache; each
value read is recorded in the config history (with its version) the first time it is seen."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from cachetools import LRUCache, TTLCache

from agentstream.adapters.dynamo.config_history import ConfigHistory, info_key, instructions_key, rag_key
from agentstream.adapters.dynamo.client import from_item, query_all, to_item
from agentstream.events import utc_now
from agentstream.settings import Tables


def _bounded(key: tuple[str, str]) -> tuple[str, str]:
    """A cache key of bounded size whatever the caller sent (a long name by its digest)."""
    kind, name = key
    return (kind, name) if len(name) <= 128 else (kind, "#" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest())


class BusinessDirectory:
    """Read-mostly lookups of the business tables; entries live `ttl_s` seconds. Callers that
    miss at the same moment share one read (a burst of conversations of one business makes one
    request, not hundreds)."""

    def __init__(self, ddb: Any, tables: Tables, ttl_s: float = 30.0, entries: int = 10_000) -> None:
        self._ddb = ddb
        self._t = tables
        self._ttl = ttl_s
        # bounded in entries and time, unknown businesses included: the ids come from callers
        self._cache: TTLCache[tuple[str, str], tuple[float, asyncio.Future[Any]]] = TTLCache(entries, ttl_s)
        self._versions: LRUCache[tuple[str, str], str] = LRUCache(entries)
        self.history = ConfigHistory(ddb, tables.config_history)

    def version(self, kind: str, name: str) -> str:
        """The version of the value last read (`kind` info, system or rag), "" if none was."""
        return self._versions.get(_bounded((kind, name)), "")

    def cached(self) -> int:
        """How many reads are cached (found or not)."""
        return len(self._cache)

    async def _cached(self, key: tuple[str, str], load: Any) -> Any:
        slot = _bounded(key)
        hit = self._cache.get(slot)
        if hit is None or hit[0] <= time.monotonic():
            hit = (time.monotonic() + self._ttl, asyncio.ensure_future(self._recorded(key, load)))
            self._cache[slot] = hit
        try:
            return await asyncio.shield(hit[1])
        except Exception:
            if self._cache.get(slot) is hit:
                del self._cache[slot]  # a failed read is not remembered
            raise

    async def _recorded(self, key: tuple[str, str], load: Any) -> Any:
        """Load a value and record it in the history (if new) as in force from now."""
        value = await load()
        if value is not None:
            history_key = {"info": info_key, "system": instructions_key, "rag": rag_key}[key[0]](key[1])
            self._versions[_bounded(key)] = await self.history.record(history_key, value, utc_now())
        return value

    async def info(self, business_id: str) -> dict[str, Any] | None:
        """The business-info item, or None for an unknown business."""

        async def load() -> dict[str, Any] | None:
            resp = await self._ddb.get_item(TableName=self._t.business_info, Key=to_item({"businessId": business_id}))
            return from_item(resp["Item"]) if "Item" in resp else None

        return await self._cached(("info", business_id), load)

    async def system_instructions(self, business_type: str) -> str:
        """The instructions for a business type (falling back to `default`), joined by key order."""

        async def load() -> str:
            for kind in (business_type, "default"):
                items = await query_all(
                    self._ddb,
                    TableName=self._t.rag_system,
                    KeyConditionExpression="businessType = :t",
                    ExpressionAttributeValues=to_item({":t": kind}),
                )
                if items:
                    return "\n".join(str(i.get("content", "")) for i in sorted(items, key=lambda i: i["key"]))
            return ""

        return await self._cached(("system", business_type), load)

    async def rag_entries(self, business_id: str) -> list[dict[str, Any]]:
        async def load() -> list[dict[str, Any]]:
            items = await query_all(
                self._ddb,
                TableName=self._t.rag_business,
                KeyConditionExpression="businessId = :b",
                ExpressionAttributeValues=to_item({":b": business_id}),
            )
            return [{"key": i["key"], "content": str(i.get("content", ""))} for i in items]

        return await self._cached(("rag", business_id), load)


def idle_minutes(info: dict[str, Any] | None, default: int) -> int:
    """The business's session idle timeout (business-info settings.sessionIdleMinutes)."""
    value = ((info or {}).get("settings") or {}).get("sessionIdleMinutes")
    return int(value) if isinstance(value, (int, float)) and value > 0 else default


def handoff_timeout_minutes(info: dict[str, Any] | None, default: int = 120) -> int:
    """How long a handed-off conversation stays with a person who does not write (business-info
    settings.handoffTimeoutMinutes, 120 by default)."""
    value = ((info or {}).get("settings") or {}).get("handoffTimeoutMinutes")
    return int(value) if isinstance(value, (int, float)) and value > 0 else default


def nudge_config(info: dict[str, Any] | None, default_idle_minutes: int = 60) -> dict[str, Any]:
    """The fold's nudge settings (FoldConfig fields): settings.nudgeAfterMinutes, used only when
    shorter than the idle timeout (`populate` refuses others; a stored one is read as off),
    settings.nudgeTexts {language: text} and the business's language."""
    settings = (info or {}).get("settings") or {}
    after = settings.get("nudgeAfterMinutes")
    valid = isinstance(after, (int, float)) and not isinstance(after, bool) and 0 < after < idle_minutes(info, default_idle_minutes)
    texts = settings.get("nudgeTexts")
    return {"nudge_after_minutes": after if valid else 0,
            "nudge_texts": {str(k): v for k, v in texts.items() if isinstance(v, str)} if isinstance(texts, dict) else {},
            "language": str((info or {}).get("language") or "en"),
            "templates": settings.get("templates") if isinstance(settings.get("templates"), dict) else {}}
