"""Writes the projections' items: never an older state over a newer one.

Every projected item carries the seq of the event that last changed it (`lastSeq` on memory
and sessions, `seq` on messages); puts are conditional on it, so re-applying an event is a
no-op and a replay running beside the live worker cannot move state backwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.dynamo import error_code, from_item, put_items, query_all, scan_all, to_item
from agentstream.adapters.tables import MESSAGES_BY_SESSION, SESSIONS_GSI
from agentstream.settings import Tables

import structlog

log = structlog.get_logger(__name__)


class StaleWrite(RuntimeError):
    """The table already holds a newer state than the one written."""


class ProjectionStore:
    def __init__(self, ddb: Any, tables: Tables) -> None:
        self._ddb = ddb
        self._t = tables

    async def load_memory(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(
            TableName=self._t.rag_user, Key=to_item({"businessId": business_id, "userId": user_id}), ConsistentRead=True
        )
        return from_item(resp["Item"]) if "Item" in resp else None

    async def write(self, memory: dict[str, Any], sessions: list[dict[str, Any]], messages: list[dict[str, Any]]) -> None:
        """Sessions, messages and the memory (the stream's checkpoint) in one transaction, each
        conditional on its seq: all of an event's effects land together or not at all."""
        puts = [self._monotonic_put(self._t.sessions, s, "lastSeq") for s in sessions]
        puts += [self._monotonic_put(self._t.messages, m, "seq") for m in messages]
        puts.append(self._monotonic_put(self._t.rag_user, memory, "lastSeq"))
        try:
            if len(puts) == 1:
                await self._ddb.put_item(**puts[0])
            else:
                await self._ddb.transact_write_items(TransactItems=[{"Put": p} for p in puts])
        except Exception as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise StaleWrite(f"rag-dynamic-user {memory['businessId']}/{memory['userId']} is past {memory['lastSeq']}") from None
            raise

    @staticmethod
    def _monotonic_put(table: str, item: dict[str, Any], attr: str) -> dict[str, Any]:
        return {
            "TableName": table,
            "Item": to_item(item),
            "ConditionExpression": "attribute_not_exists(#a) OR #a <= :v",
            "ExpressionAttributeNames": {"#a": attr},
            "ExpressionAttributeValues": to_item({":v": item[attr]}),
        }

    async def write_bulk(self, memory: dict[str, Any], sessions: list[dict[str, Any]], messages: list[dict[str, Any]]) -> None:
        """Like `write`, for a replay: message items never change once written (same event, same
        item), so they go in unconditional batches; sessions and memory stay monotonic."""
        await asyncio.gather(
            put_items(self._ddb, self._t.messages, messages),
            *(self._put_monotonic(self._t.sessions, s, "lastSeq") for s in sessions),
        )
        await self._put_monotonic(self._t.rag_user, memory, "lastSeq")

    async def _put_monotonic(self, table: str, item: dict[str, Any], attr: str) -> bool:
        try:
            await self._ddb.put_item(**self._monotonic_put(table, item, attr))
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    async def session(self, session_id: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(TableName=self._t.sessions, Key=to_item({"sessionId": session_id}))
        return from_item(resp["Item"]) if "Item" in resp else None

    async def session_messages(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A session's messages in time order (GSI sessionId-timestamp-index); the last `limit`."""
        kwargs: dict[str, Any] = {
            "TableName": self._t.messages,
            "IndexName": MESSAGES_BY_SESSION,
            "KeyConditionExpression": "sessionId = :s",
            "ExpressionAttributeValues": to_item({":s": session_id}),
            "ScanIndexForward": limit is None,
        }
        if limit is not None:
            resp = await self._ddb.query(**kwargs, Limit=limit)
            return list(reversed([from_item(i) for i in resp.get("Items", [])]))
        return await query_all(self._ddb, **kwargs)


async def sessions_of_user(ddb: Any, tables: Tables, business_id: str, user_id: str,
                           status: str | None = None) -> list[dict[str, Any]]:
    """A customer's sessions (of one status, if given): the GSI businessId-userId-index, or a
    scan when the GSI is missing (logged)."""
    values = {":b": business_id, ":u": user_id}
    status_filter: dict[str, Any] = {}
    if status:
        values[":st"] = status
        status_filter = {"FilterExpression": "#s = :st", "ExpressionAttributeNames": {"#s": "status"}}
    try:
        return await query_all(ddb, TableName=tables.sessions, IndexName=SESSIONS_GSI, **status_filter,
                               KeyConditionExpression="businessId = :b AND userId = :u",
                               ExpressionAttributeValues=to_item(values))
    except Exception as exc:
        if error_code(exc) not in ("ValidationException", "ResourceNotFoundException"):
            raise
    log.warning("sessions.gsi_missing_fallback_scan", table=tables.sessions, index=SESSIONS_GSI)
    scan_filter = "businessId = :b AND userId = :u" + (" AND #s = :st" if status else "")
    return await scan_all(ddb, TableName=tables.sessions, ExpressionAttributeValues=to_item(values),
                          **(status_filter | {"FilterExpression": scan_filter}))


async def get_active_session_for_user(ddb: Any, tables: Tables, business_id: str, user_id: str) -> dict[str, Any] | None:
    """The seed's lookup: the customer's active session (GSI, or a scan when the GSI is missing)."""
    items = await sessions_of_user(ddb, tables, business_id, user_id, status="active")
    return max(items, key=lambda s: s.get("lastMessageAt", ""), default=None)
