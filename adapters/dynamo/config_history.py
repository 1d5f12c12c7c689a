"""The history of what a reply is built from besides the log: business info, system instructions
and business RAG, each version kept with the time it came into force (table
`ai-agent-config-history`, PK configKey, SK validFrom).

A version is recorded when a writer changes it (`populate`) or when a reader first sees it
(a change made straight in the table is recorded within the directory's cache time), so a reply
from last month is explained with last month's opening hours, and folds read the settings in
force at an event's time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import structlog

from agentstream.adapters.dynamo.client import error_code, from_item, query_all, to_item
from agentstream.events import iso

log = structlog.get_logger(__name__)


def version_of(content: Any) -> str:
    """A short content hash: the same content has the same version everywhere."""
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def info_key(business_id: str) -> str:
    return f"business-info#{business_id}"


def instructions_key(business_type: str) -> str:
    return f"rag-system#{business_type}"


def rag_key(business_id: str) -> str:
    return f"rag-business#{business_id}"


class ConfigHistory:
    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    async def record(self, key: str, content: Any, at: datetime) -> str:
        """Keep `content` as the version in force from `at` unless it is already the latest;
        returns its version."""
        version = version_of(content)
        item = {"configKey": key, "validFrom": iso(at), "version": version,
                "content": json.dumps(content, ensure_ascii=False, default=str)}
        try:
            latest = await self._newest(key, None)
            if latest is None or latest[1] != version:
                await self._ddb.put_item(TableName=self._table, Item=to_item(item),
                                         ConditionExpression="attribute_not_exists(configKey)")
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":  # a deployment that has not run `setup` since
                log.warning("config_history.table_missing", table=self._table, hint="run `agentstream setup`")
            elif code != "ConditionalCheckFailedException":  # else another process recorded it
                raise
        return version

    async def at(self, key: str, when: datetime) -> tuple[Any, str] | None:
        """(content, version) in force at `when`; None when nothing was recorded by then."""
        return await self._newest(key, when)

    async def versions(self, key: str) -> list[tuple[str, Any, str]]:
        """Every recorded version, oldest first: (validFrom, content, version)."""
        items = await query_all(self._ddb, TableName=self._table, KeyConditionExpression="configKey = :k",
                                ExpressionAttributeValues=to_item({":k": key}))
        return [(i["validFrom"], json.loads(i["content"]), i["version"]) for i in items]

    async def _newest(self, key: str, until: datetime | None) -> tuple[Any, str] | None:
        condition, values = "configKey = :k", {":k": key}
        if until is not None:
            condition += " AND validFrom <= :t"
            values[":t"] = iso(until)
        resp = await self._ddb.query(TableName=self._table, KeyConditionExpression=condition,
                                     ExpressionAttributeValues=to_item(values), ScanIndexForward=False, Limit=1)
        items = resp.get("Items", [])
        if not items:
            return None
        item = from_item(items[0])
        return json.loads(item["content"]), item["version"]
