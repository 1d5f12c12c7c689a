"""The event store and the projection store in memory, with DynamoDB's semantics: conditional
writes, transactions that go in whole or fail with a reason per item, the tables' keys and the
GSIs the stores read (from `table_specs`). Items pass through the DynamoDB codec (`to_item`,
`from_item`), so what comes back is what DynamoDB would give. For tests and the processor's
unit tests; tests/unit/test_store_contract.py keeps them in step with DynamoDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.adapters.dynamo.config_history import info_key, instructions_key, rag_key, version_of
from agentstream.adapters.dynamo.event_store import (
    IDEM_PREFIX, TOMBSTONE_PREFIX, AppendFailed, AppendResult, event_from_item, idem_item, idem_key, log_item,
)
from agentstream.adapters.dynamo.projection_store import AppendRaced, StaleWrite
from agentstream.adapters.side_items import AddTo, Claim, SideItem, SideRefused, TakeFrom, located, refused
from agentstream.adapters.dynamo.tables import EVENTS_BY_ID, MESSAGES_BY_BUSINESS, MESSAGES_BY_SESSION, TableSpec, table_specs
from agentstream.events import Event, iso, utc_now
from agentstream.metrics import APPEND_CONFLICTS
from agentstream.projections.base import Item, Projection, Put
from agentstream.settings import Tables

Row = dict[str, Any]


def _stored(item: Row) -> Row:
    """`item` as DynamoDB keeps it (numbers, lists and maps normalised; bad values refused)."""
    return from_item(to_item(item))


@dataclass(frozen=True)
class Op:
    """One item of a transaction: a condition on the item at `key` and what the item becomes."""

    table: str
    key: Row
    condition: Callable[[Row | None], bool]
    change: Callable[[Row | None], Row | None]  # the new item (None: deleted)


class Cancelled(Exception):
    """A transaction refused: one reason per item ("ConditionalCheckFailed" or "None")."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


class MemoryTables:
    """Every table of `Tables` as dicts keyed by their key attributes."""

    def __init__(self, tables: Tables) -> None:
        self.names = tables
        self._specs: dict[str, TableSpec] = {}
        self._items: dict[str, dict[tuple[Any, ...], Row]] = {}
        self.ensure(tables)

    def ensure(self, tables: Tables) -> None:
        """Add the tables of `tables` not here yet (`ensure_tables`, in memory)."""
        for spec in table_specs(tables):
            self._specs.setdefault(spec.name, spec)
            self._items.setdefault(spec.name, {})

    def _key(self, table: str, item: Row) -> tuple[Any, ...]:
        spec = self._specs[table]
        return tuple(item[k[0]] for k in (spec.hash_key, spec.range_key) if k)

    def get(self, table: str, key: Row) -> Row | None:
        found = self._items[table].get(self._key(table, key))
        return dict(found) if found is not None else None

    def put(self, table: str, item: Row) -> None:
        self._items[table][self._key(table, item)] = _stored(item)

    def delete(self, table: str, key: Row) -> None:
        self._items[table].pop(self._key(table, key), None)

    def transact(self, ops: Sequence[Op]) -> None:
        """Every op's condition holds, then every change is made; else none is (`Cancelled`)."""
        reasons = ["None" if op.condition(self.get(op.table, op.key)) else "ConditionalCheckFailed" for op in ops]
        if "ConditionalCheckFailed" in reasons:
            raise Cancelled(reasons)
        for op in ops:
            new = op.change(self.get(op.table, op.key))
            self.put(op.table, new) if new is not None else self.delete(op.table, op.key)

    def rows(self, table: str) -> list[Row]:
        return [dict(i) for i in self._items[table].values()]

    def query(self, table: str, index: str | None, hash_value: Any, forward: bool = True) -> list[Row]:
        """The items of a partition of the table or of one of its GSIs (sparse: an item without
        the index's key is not in it), in range-key order; KEYS_ONLY indexes give keys only."""
        spec = self._specs[table]
        ix = next((i for i in spec.indexes if i.name == index), None) if index else None
        hash_key, range_key = (ix.hash_key, ix.range_key) if ix else (spec.hash_key, spec.range_key)
        found = [i for i in self.rows(table) if i.get(hash_key[0]) == hash_value and (not range_key or range_key[0] in i)]
        if range_key:
            found.sort(key=lambda i: i[range_key[0]], reverse=not forward)
        if ix and ix.projection == "KEYS_ONLY":
            names = {k[0] for k in (spec.hash_key, spec.range_key, ix.hash_key, ix.range_key) if k}
            found = [{k: v for k, v in i.items() if k in names} for i in found]
        return found


def _absent(item: Row | None) -> bool:
    return item is None


def _put(item: Row) -> Callable[[Row | None], Row]:
    return lambda _: item


class MemoryEventStore:
    """`EventStore` in memory (the events table of `tables`)."""

    def __init__(self, tables: MemoryTables, max_attempts: int = 50) -> None:
        self.tables = self._db = tables
        self._table = tables.names.events
        self._max_attempts = max_attempts

    async def append(self, event: Event, external_id: str | None = None, aliases: tuple[str, ...] = (),
                     head: int | None = None, guessed: bool = False) -> AppendResult:
        return await self._append(event, external_id, aliases, head, guessed, ())

    async def append_with(self, event: Event, side: Sequence[SideItem], external_id: str | None = None,
                          head: int | None = None) -> AppendResult:
        return await self._append(event, external_id, (), head, False, tuple(side))

    async def _append(self, event: Event, external_id: str | None, aliases: tuple[str, ...], head: int | None,
                      guessed: bool, side: tuple[SideItem, ...]) -> AppendResult:
        """As `EventStore._append`: at head + 1, a lost race counted and tried again at the read head."""
        for _ in range(self._max_attempts):
            seq = (head if head is not None else await self.head(event.streamId)) + 1
            check, head = guessed and head is not None and seq > 1, None
            stored = event.with_seq(seq)
            try:
                self._db.transact(self._ops(stored, external_id, aliases, side, check))
            except Cancelled as exc:
                if external_id and exc.reasons[1] == "ConditionalCheckFailed":
                    existing = await self.find(event.businessId, external_id)
                    if existing is not None:
                        return AppendResult(existing, duplicate=True)
                if names := refused(side, list(exc.reasons), external_id):
                    raise SideRefused(names) from None
                APPEND_CONFLICTS.labels(event.type).inc()
                continue
            return AppendResult(stored, duplicate=False)
        raise AppendFailed(f"append to {event.streamId} failed after {self._max_attempts} attempts")

    def _ops(self, event: Event, external_id: str | None, aliases: tuple[str, ...], side: tuple[SideItem, ...],
             check_previous: bool) -> list[Op]:
        ops = self.append_items(event, external_id)
        ops += [Op(self._table, self._idem(event.businessId, a), lambda _: True, _put(idem_item(event.businessId, a, event)))
                for a in aliases]
        ops += [self._side_op(event.businessId, s) for s in side]
        if check_previous:
            ops.append(Op(self._table, {"streamId": event.streamId, "seq": event.seq - 1},
                          lambda item: item is not None, lambda item: item))
        return ops

    def append_items(self, event: Event, external_id: str | None, side: Sequence[SideItem] = ()) -> list[Op]:
        """The transaction items that append `event` at its own seq, once per `external_id` (if
        any), with `side` items after them."""
        ops = [Op(self._table, {"streamId": event.streamId, "seq": event.seq}, _absent, _put(log_item(event)))]
        if external_id is not None:
            ops.append(Op(self._table, self._idem(event.businessId, external_id), _absent,
                          _put(idem_item(event.businessId, external_id, event))))
        return ops + [self._side_op(event.businessId, s) for s in side]

    def _idem(self, business_id: str, name: str) -> Row:
        return {"streamId": idem_key(business_id, name), "seq": 0}

    def _side_op(self, business_id: str, side: SideItem) -> Op:
        table, key = located(side, self._table, self._idem(business_id, side.name))
        if isinstance(side, Claim):
            return Op(table, key, _absent, _put({**key, **side.values}))
        add: AddTo | TakeFrom = side
        delta = -add.amount if isinstance(add, TakeFrom) else add.amount
        return Op(table, key, lambda item: add.fits((item or {}).get(add.attribute)),
                  lambda item: {**(item or key), add.attribute: (item or {}).get(add.attribute, 0) + delta})

    async def set_side(self, business_id: str, name: str, values: dict[str, Any]) -> None:
        key = self._idem(business_id, name)
        self._db.put(self._table, {**key, **values})

    async def side(self, business_id: str, name: str) -> dict[str, Any] | None:
        item = self._db.get(self._table, self._idem(business_id, name))
        return {k: v for k, v in item.items() if k not in ("streamId", "seq")} if item is not None else None

    async def read(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        return [event_from_item(i) for i in await self.read_items(stream, after_seq, limit)]

    async def read_items(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[Row]:
        items = [i for i in self._db.query(self._table, None, stream) if i["seq"] > after_seq]
        return items[:limit] if limit is not None else items

    async def get(self, stream: str, seq: int) -> Event | None:
        item = self._db.get(self._table, {"streamId": stream, "seq": seq})
        return event_from_item(item) if item is not None else None

    async def head(self, stream: str) -> int:
        items = self._db.query(self._table, None, stream, forward=False)
        return int(items[0]["seq"]) if items else 0

    async def find(self, business_id: str, external_id: str) -> Event | None:
        idem = self._db.get(self._table, self._idem(business_id, external_id))
        return await self.get(idem["eventStreamId"], int(idem["eventSeq"])) if idem is not None else None

    async def has(self, business_id: str, external_id: str) -> bool:
        return self._db.get(self._table, self._idem(business_id, external_id)) is not None

    async def by_id(self, event_id: str) -> Event | None:
        for key in self._db.query(self._table, EVENTS_BY_ID, event_id):
            if not str(key["streamId"]).startswith((IDEM_PREFIX, TOMBSTONE_PREFIX)):
                return await self.get(key["streamId"], int(key["seq"]))
        return None

    async def forgotten_at(self, business_id: str, user_id: str) -> datetime | None:
        item = self._db.get(self._table, {"streamId": f"{TOMBSTONE_PREFIX}{business_id}#{user_id}", "seq": 0})
        return datetime.fromisoformat(item["forgottenAt"].replace("Z", "+00:00")) if item is not None else None

    async def stream_heads(self) -> dict[str, int]:
        heads: dict[str, int] = {}
        for item in self._db.rows(self._table):
            if not str(item["streamId"]).startswith((IDEM_PREFIX, TOMBSTONE_PREFIX)):
                heads[item["streamId"]] = max(int(item["seq"]), heads.get(item["streamId"], 0))
        return heads


def _newer_or_equal(put: Put) -> Callable[[Row | None], bool]:
    """`ProjectionStore`'s monotonic condition: no stored position past the put's (a newer fold
    version's state replaces an older one's whatever its position)."""

    def holds(item: Row | None) -> bool:
        if item is None or put.position not in item or item[put.position] <= put.item[put.position]:
            return True
        return put.version > 1 and ("version" not in item or item["version"] < put.version)

    return holds


class MemoryProjectionStore:
    """`ProjectionStore` in memory, on the same `MemoryTables` as the event store whose
    `append_items` its `write` takes; `names`: tables of its own there (default: the first)."""

    def __init__(self, tables: MemoryTables, names: Tables | None = None) -> None:
        self.tables = self._db = tables
        self._t = names or tables.names
        tables.ensure(self._t)

    def _op(self, put: Put) -> Op:
        return Op(getattr(self._t, put.table), put.item, _newer_or_equal(put), _put(put.item))

    async def load_memory(self, business_id: str, user_id: str) -> dict[str, Any] | None:
        return self._db.get(self._t.rag_user, {"businessId": business_id, "userId": user_id})

    async def load_states(self, projections: Iterable[Projection], business_id: str, user_id: str) -> dict[str, Item | None]:
        key = {"businessId": business_id, "userId": user_id}
        return {p.name: self._db.get(getattr(self._t, p.table), key) for p in projections}

    async def write(self, puts: list[Put], appends: list[Op] | None = None) -> None:
        appends = appends or []
        try:
            self._db.transact([*appends, *(self._op(p) for p in puts)])
        except Cancelled as exc:
            if "ConditionalCheckFailed" in exc.reasons[:len(appends)]:
                raise AppendRaced("an append written with the projections lost its race") from None
            raise StaleWrite("a newer state is stored") from None

    async def write_bulk(self, puts: list[Put]) -> None:
        for put in puts:
            if put.written_once:
                self._db.put(getattr(self._t, put.table), put.item)
            else:
                try:
                    self._db.transact([self._op(put)])
                except Cancelled:
                    pass

    async def delete_stale(self, stale: list[tuple[Projection, Put]]) -> None:
        for p, put in stale:
            self._db.delete(getattr(self._t, put.table), {k: put.item[k] for k in p.owns[put.table]})

    async def session(self, session_id: str) -> dict[str, Any] | None:
        return self._db.get(self._t.sessions, {"sessionId": session_id})

    async def session_messages(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        items = self._db.query(self._t.messages, MESSAGES_BY_SESSION, session_id)
        return items[-limit:] if limit is not None else items

    async def customer_messages(self, business_id: str, user_id: str) -> list[dict[str, Any]]:
        return [i for i in self._db.query(self._t.messages, MESSAGES_BY_BUSINESS, business_id) if i.get("userId") == user_id]


class MemoryConfigHistory:
    """`ConfigHistory` in memory: each key's versions in the order of their times."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, tuple[Any, str]]] = {}  # key -> validFrom -> (content, version)

    async def record(self, key: str, content: Any, at: datetime) -> str:
        version = version_of(content)
        kept = self._versions.setdefault(key, {})
        latest = kept[max(kept)] if kept else None
        if latest is None or latest[1] != version:
            kept.setdefault(iso(at), (json.loads(json.dumps(content, ensure_ascii=False, default=str)), version))
        return version

    async def at(self, key: str, when: datetime) -> tuple[Any, str] | None:
        kept = self._versions.get(key, {})
        found = [start for start in kept if start <= iso(when)]
        return kept[max(found)] if found else None

    async def versions(self, key: str) -> list[tuple[str, Any, str]]:
        return [(start, *self._versions[key][start]) for start in sorted(self._versions.get(key, {}))]


class MemoryDirectory:
    """`BusinessDirectory` in memory: business info, system instructions by business type
    (falling back to `default`) and business RAG, as given; each value read is recorded in its
    config history (`history`) as `BusinessDirectory` records it, and its version kept."""

    def __init__(self, info: dict[str, dict[str, Any]] | None = None, instructions: dict[str, str] | None = None,
                 rag: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.infos = info or {}
        self.instructions = instructions or {}
        self.rag = rag or {}
        self.history = MemoryConfigHistory()
        self._versions: dict[tuple[str, str], str] = {}

    def version(self, kind: str, name: str) -> str:
        return self._versions.get((kind, name), "")

    async def _recorded(self, kind: str, name: str, key: str, value: Any) -> Any:
        if value is not None:
            self._versions[(kind, name)] = await self.history.record(key, value, utc_now())
        return value

    async def info(self, business_id: str) -> dict[str, Any] | None:
        return await self._recorded("info", business_id, info_key(business_id), self.infos.get(business_id))

    async def system_instructions(self, business_type: str) -> str:
        found = self.instructions.get(business_type, self.instructions.get("default", ""))
        return await self._recorded("system", business_type, instructions_key(business_type), found)

    async def rag_entries(self, business_id: str) -> list[dict[str, Any]]:
        return await self._recorded("rag", business_id, rag_key(business_id), list(self.rag.get(business_id, [])))


class MemoryItems:
    """Replay's reads and unconditional batched puts of the projection tables, in memory
    (`LiveItems` and `BatchWriter` over DynamoDB)."""

    def __init__(self, tables: MemoryTables) -> None:
        self._db = tables

    async def get(self, table: str, key: Row) -> Row | None:
        return self._db.get(table, key)

    def add(self, table: str, items: list[Row]) -> None:
        for item in items:
            self._db.put(table, item)

    async def flush(self) -> None:
        """Nothing is held back: every item is in at `add`."""


def memory_stores(tables: Tables | None = None) -> tuple[MemoryEventStore, MemoryProjectionStore]:
    """An event store and a projection store sharing one set of in-memory tables."""
    db = MemoryTables(tables or Tables())
    return MemoryEventStore(db), MemoryProjectionStore(db)
