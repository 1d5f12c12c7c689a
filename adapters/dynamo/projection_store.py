"""Writes the projections' items: never an older state over a newer one.

Every projected item carries the seq of the event that last changed it (`lastSeq` on memory
and sessions, `seq` on messages); puts are conditional on it, so re-applying an event is a
no-op and a replay running beside the live worker cannot move state backwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NoReturn

from agentstream.adapters.dynamo.client import (
    batch_write, error_code, from_item, put_items, query_all, read_into, scan_all, to_item, until_processed,
)
from agentstream.adapters.dynamo.tables import MESSAGES_BY_BUSINESS, MESSAGES_BY_SESSION, SESSIONS_DUE, SESSIONS_GSI
from agentstream.projections.base import Item, Projection, Put
from agentstream.settings import Tables

import structlog

log = structlog.get_logger(__name__)


class StaleWrite(RuntimeError):
    """The table already holds a newer state than the one written."""


class AppendRaced(RuntimeError):
    """An append written with the puts did not go in (its seq is taken, or its idempotency key is
    recorded already), so nothing of the transaction did."""


class ProjectionStore:
    """Reads projections' state items and writes their puts (`Put.table` names a `Tables` field)."""

    def __init__(self, ddb: Any, tables: Tables) -> None:
        self._ddb = ddb
        self._t = tables

    async def due_sessions(self, shard: int, until: str) -> list[dict[str, Any]]:
        """The active sessions of one due shard whose `nextDueAt` is at or before `until`."""
        return await due_sessions(self._ddb, self._t, shard, until)

    async def load_memory(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        resp = await self._ddb.get_item(
            TableName=self._t.rag_user, Key=to_item({"businessId": business_id, "userId": user_id}), ConsistentRead=True
        )
        return from_item(resp["Item"]) if "Item" in resp else None

    async def load_states(self, projections: Iterable[Projection], business_id: str, user_id: str) -> dict[str, Item | None]:
        """Each projection's state item of one customer (None where it has none), in one call."""
        key = to_item({"businessId": business_id, "userId": user_id})
        by_table = {getattr(self._t, p.table): p.name for p in projections}
        request = {table: {"Keys": [key], "ConsistentRead": True} for table in by_table}
        found: dict[str, Item | None] = dict.fromkeys(by_table.values())

        async def read(pending: dict[str, Any]) -> dict[str, Any]:
            resp = await self._ddb.batch_get_item(RequestItems=pending)
            for table, items in resp.get("Responses", {}).items():
                for item in items:
                    found[by_table[table]] = from_item(item)
            return resp

        await until_processed(read, request, "UnprocessedKeys")
        return found

    async def write(self, puts: list[Put], appends: list[dict[str, Any]] | None = None) -> None:
        """Puts in one transaction, each conditional on its position: all of the events' effects
        (and the positions that say they are done) land together or not at all. `appends`:
        transaction items of an append (`EventStore.append_items`) that land with them, first."""
        appends = appends or []
        requests = [*appends, *({"Put": self._monotonic_put(p)} for p in puts)]
        try:
            if len(requests) == 1 and not appends:
                await self._ddb.put_item(**requests[0]["Put"])
            elif requests:
                await self._ddb.transact_write_items(TransactItems=requests)
        except Exception as exc:
            _raise_for(exc, len(appends), puts)

    def _monotonic_put(self, put: Put) -> dict[str, Any]:
        condition = "attribute_not_exists(#a) OR #a <= :v"
        names, values = {"#a": put.position}, {":v": put.item[put.position]}
        if put.version > 1:  # a newer fold's state replaces an older fold's, whatever its position
            condition += " OR attribute_not_exists(#ver) OR #ver < :ver"
            names["#ver"], values[":ver"] = "version", put.version
        return {
            "TableName": getattr(self._t, put.table),
            "Item": to_item(put.item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }

    async def write_bulk(self, puts: list[Put]) -> None:
        """Like `write`, for a replay: items one event writes once go in unconditional batches;
        the others stay monotonic (a replay beside the live worker never moves state back)."""
        once: dict[str, list[Item]] = {}
        for put in puts:
            if put.written_once:
                once.setdefault(getattr(self._t, put.table), []).append(put.item)
        await asyncio.gather(
            *(put_items(self._ddb, table, items) for table, items in once.items()),
            *(self._put_monotonic(p) for p in puts if not p.written_once),
        )

    async def _put_monotonic(self, put: Put) -> bool:
        try:
            await self._ddb.put_item(**self._monotonic_put(put))
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    async def delete_stale(self, stale: list[tuple[Projection, Put]]) -> None:
        """Delete items a fold no longer writes (a re-fold after a skipped event came back: e.g.
        a session that now opens at an earlier seq has another id), 25 to a BatchWriteItem."""
        keys = [(getattr(self._t, put.table), {k: put.item[k] for k in p.owns[put.table]}) for p, put in stale]
        for start in range(0, len(keys), 25):
            requests: dict[str, list[dict[str, Any]]] = {}
            for table, key in keys[start:start + 25]:
                requests.setdefault(table, []).append({"DeleteRequest": {"Key": to_item(key)}})
            await batch_write(self._ddb, requests)

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

    async def customer_messages(self, business_id: str, user_id: str) -> list[dict[str, Any]]:
        """A customer's messages through the business's index (GSI businessId-timestamp-index,
        filtered by userId), in time order."""
        return await query_all(self._ddb, TableName=self._t.messages, IndexName=MESSAGES_BY_BUSINESS,
                               KeyConditionExpression="businessId = :b", FilterExpression="userId = :u",
                               ExpressionAttributeValues=to_item({":b": business_id, ":u": user_id}))


    async def business_sessions(self, business_id: str) -> list[dict[str, Any]]:
        """The business's sessions (GSI businessId-userId-index)."""
        return await query_all(self._ddb, TableName=self._t.sessions, IndexName=SESSIONS_GSI,
                               KeyConditionExpression="businessId = :b", ExpressionAttributeValues=to_item({":b": business_id}))

    async def active_session_of_user(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        """The customer's active session (see `get_active_session_for_user`)."""
        return await get_active_session_for_user(self._ddb, self._t, business_id, user_id)

    async def customer_facts(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        """The customer's facts state item (consistent read), None for a customer with none."""
        resp = await self._ddb.get_item(TableName=self._t.facts, Key=to_item({"businessId": business_id, "userId": user_id}),
                                        ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    async def customers(self, business_id: str, user_ids: list[str], with_memory: bool = True
                        ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Each customer's facts state and, with `with_memory`, the delivery statuses of their
        memory ({"userId", "replyStatus"}), by userId; 100 keys a BatchGetItem (50 customers when
        both tables are read)."""
        facts_table, memory_table = self._t.facts, self._t.rag_user
        facts: dict[str, dict[str, Any]] = {}
        memories: dict[str, dict[str, Any]] = {}
        unique, step = sorted(set(user_ids)), 50 if with_memory else 100
        for start in range(0, len(unique), step):
            keys = [to_item({"businessId": business_id, "userId": u}) for u in unique[start:start + step]]
            request: dict[str, Any] = {facts_table: {"Keys": keys}}
            if with_memory:
                request[memory_table] = {"Keys": keys, "ProjectionExpression": "userId, replyStatus"}
            states: list[dict[str, Any]] = []
            read: list[dict[str, Any]] = []
            await until_processed(lambda pending: self._read_both(pending, states, read), request, "UnprocessedKeys")
            facts.update((state["userId"], state) for state in states)
            memories.update((memory["userId"], memory) for memory in read)
        return facts, memories

    async def _read_both(self, request: dict[str, Any], facts: list[dict[str, Any]],
                         memories: list[dict[str, Any]]) -> dict[str, Any]:
        """One BatchGetItem of the facts (and memory) items; what each table answered is added."""
        answer = await read_into(self._ddb, request, self._t.facts, facts)
        memories.extend(from_item(i) for i in answer.get("Responses", {}).get(self._t.rag_user, []))
        return answer


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


async def due_sessions(ddb: Any, tables: Tables, shard: int, until: str) -> list[dict[str, Any]]:
    """The active sessions of one due shard whose `nextDueAt` is at or before `until` (the
    sparse index dueShard-nextDueAt-index: ended sessions are not in it)."""
    return await query_all(ddb, TableName=tables.sessions, IndexName=SESSIONS_DUE,
                           KeyConditionExpression="dueShard = :d AND nextDueAt <= :t",
                           ExpressionAttributeValues=to_item({":d": shard, ":t": until}))


async def positions(ddb: Any, state_tables: list[str], streams: list[str]) -> dict[str, int]:
    """What every projection has applied of each stream (`businessId#userId`): the lowest
    lastSeq of its state items (0 where one is missing), read 100 keys a BatchGetItem."""
    applied = {stream: -1 for stream in streams}
    for table in state_tables:
        keys = [dict(zip(("businessId", "userId"), s.split("#", 1))) for s in streams]
        found = {f"{i['businessId']}#{i['userId']}": int(i.get("lastSeq", 0))
                 for i in await _get_many(ddb, table, keys, "businessId, userId, lastSeq")}
        for stream in streams:
            seq = found.get(stream, 0)
            applied[stream] = seq if applied[stream] < 0 else min(applied[stream], seq)
    return {stream: max(seq, 0) for stream, seq in applied.items()}


async def _get_many(ddb: Any, table: str, keys: list[dict[str, Any]], projection: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": [to_item(k) for k in keys[start:start + 100]],
                                           "ProjectionExpression": projection, "ConsistentRead": True}}
        await until_processed(lambda pending: read_into(ddb, pending, table, found), request, "UnprocessedKeys")
    return found


def _raise_for(exc: Exception, appends: int, puts: list[Put]) -> NoReturn:
    """What a refused write means: the append's condition failed (`AppendRaced`), a state's did
    (`StaleWrite`), or neither (a transaction conflict, a throttle: `exc` itself, to be tried
    again). Without the cancellation's reasons, a transaction with an append is tried again (the
    next try reads the log) rather than taken for a stale state."""
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        raise StaleWrite(f"a newer state is stored for {_who(puts)}") from None
    if code != "TransactionCanceledException":
        raise exc
    failed = [r.get("Code") == "ConditionalCheckFailed" for r in getattr(exc, "response", {}).get("CancellationReasons") or []]
    if any(failed[:appends]):
        raise AppendRaced(f"an append written with the projections of {_who(puts)} lost its race") from None
    if any(failed[appends:]) or (not failed and not appends):
        raise StaleWrite(f"a newer state is stored for {_who(puts)}") from None
    raise exc


def _who(puts: list[Put]) -> str:
    item = next((p.item for p in puts if "userId" in p.item), {})
    return f"{item.get('businessId')}#{item.get('userId')}"
