"""The tables of the contract (README: tables) and their idempotent set-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog

from agentstream.adapters.dynamo.client import error_code
from agentstream.settings import Tables

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: tuple[str, str]
    range_key: tuple[str, str] | None = None
    projection: str = "ALL"  # or KEYS_ONLY


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: tuple[str, str]
    range_key: tuple[str, str] | None = None
    indexes: tuple[Index, ...] = ()
    stream: bool = False
    ttl_attribute: str | None = None

    def _attributes(self) -> list[dict[str, str]]:
        keys = [self.hash_key, self.range_key]
        for ix in self.indexes:
            keys += [ix.hash_key, ix.range_key]
        seen: dict[str, str] = {}
        for key in keys:
            if key:
                seen.setdefault(key[0], key[1])
        return [{"AttributeName": n, "AttributeType": t} for n, t in seen.items()]


def _key_schema(hash_key: tuple[str, str], range_key: tuple[str, str] | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
    return schema


def _index_def(ix: Index) -> dict[str, Any]:
    return {"IndexName": ix.name, "KeySchema": _key_schema(ix.hash_key, ix.range_key), "Projection": {"ProjectionType": ix.projection}}


SESSIONS_GSI = "businessId-userId-index"
MESSAGES_BY_SESSION = "sessionId-timestamp-index"
MESSAGES_BY_BUSINESS = "businessId-timestamp-index"
EVENTS_BY_ID = "eventId-index"  # finds a logged event by its eventId (explain)
EVENTS_BY_INGEST = "ingestBucket-ingestedAt-index"  # the events appended in a time window (reconcile)
EVENTS_BY_STREAM = "eventStreamId-index"  # a stream's idempotency records (forget)
BOOKINGS_BY_START = "businessId-startsAt-index"  # a business's appointments by start (the days asked about)
SESSIONS_DUE = "dueShard-nextDueAt-index"  # sparse: active sessions by when their timer is due (expiry)


def table_specs(t: Tables) -> list[TableSpec]:
    s, n = "S", "N"
    return [
        TableSpec(t.events, ("streamId", s), ("seq", n), stream=True,
                  indexes=(Index(EVENTS_BY_ID, ("eventId", s), projection="KEYS_ONLY"),
                           Index(EVENTS_BY_INGEST, ("ingestBucket", s), ("ingestedAt", s), projection="KEYS_ONLY"),
                           Index(EVENTS_BY_STREAM, ("eventStreamId", s), projection="KEYS_ONLY"))),
        TableSpec(t.sessions, ("sessionId", s), indexes=(Index(SESSIONS_GSI, ("businessId", s), ("userId", s)),
                                                         Index(SESSIONS_DUE, ("dueShard", n), ("nextDueAt", s)))),
        TableSpec(
            t.messages,
            ("messageId", s),
            ("sessionId", s),
            indexes=(
                Index(MESSAGES_BY_SESSION, ("sessionId", s), ("timestamp", s)),
                Index(MESSAGES_BY_BUSINESS, ("businessId", s), ("timestamp", s)),
            ),
        ),
        TableSpec(t.business_info, ("businessId", s)),
        TableSpec(t.rag_system, ("businessType", s), ("key", s)),
        TableSpec(t.rag_business, ("businessId", s), ("key", s)),
        TableSpec(t.rag_user, ("businessId", s), ("userId", s)),
        TableSpec(t.credentials, ("businessId", s), ("provider", s)),
        TableSpec(t.leases, ("shardId", s)),
        TableSpec(t.facts, ("businessId", s), ("userId", s)),
        TableSpec(t.config_history, ("configKey", s), ("validFrom", s)),
        TableSpec(t.analytics_snapshots, ("snapshotKey", s), ("part", n)),  # analytics state with its offsets
        TableSpec(t.inbox_views, ("businessId", s), ("viewKey", s), ttl_attribute="expiresAt"),  # who read what; ended inbox sessions
        TableSpec(t.rate_limits, ("limitKey", s), ttl_attribute="expiresAt"),  # a counter per limit, caller and window
        TableSpec(t.widget_visitors, ("businessId", s), ("userId", s), ttl_attribute="expiresAt"),  # tokens' state
        TableSpec(t.appointments, ("businessId", s), ("userId", s)),  # a customer's appointments (state item)
        TableSpec(t.bookings, ("businessId", s), ("appointmentId", s), indexes=(Index(BOOKINGS_BY_START, ("businessId", s), ("startsAt", s)),)),
        TableSpec(t.reminders, ("businessId", s), ("userId", s), indexes=(Index(SESSIONS_DUE, ("dueShard", n), ("nextDueAt", s)),)),  # reminders, sparse due index
        TableSpec(t.usage, ("businessId", s), ("month", s)),  # model spend per business and month (the spend ceiling)
    ]


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)
    indexes_added: list[str] = field(default_factory=list)
    streams_enabled: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.indexes_added or self.streams_enabled)


async def _describe(ddb: Any, name: str) -> dict[str, Any] | None:
    try:
        return (await ddb.describe_table(TableName=name))["Table"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


async def _wait_active(ddb: Any, name: str, timeout: float = 60) -> None:
    for _ in range(int(timeout * 10)):
        table = await _describe(ddb, name)
        busy = [ix for ix in (table or {}).get("GlobalSecondaryIndexes", []) if ix.get("IndexStatus") not in (None, "ACTIVE")]
        if table and table.get("TableStatus") == "ACTIVE" and not busy:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"table {name} did not become ACTIVE")


async def _create(ddb: Any, spec: TableSpec) -> None:
    args: dict[str, Any] = {
        "TableName": spec.name,
        "KeySchema": _key_schema(spec.hash_key, spec.range_key),
        "AttributeDefinitions": spec._attributes(),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        args["GlobalSecondaryIndexes"] = [_index_def(ix) for ix in spec.indexes]
    if spec.stream:
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    await ddb.create_table(**args)


async def _finish(ddb: Any, spec: TableSpec, table: dict[str, Any], report: SetupReport) -> None:
    """Add what an existing table lacks: missing GSIs, the stream."""
    have = {ix["IndexName"] for ix in table.get("GlobalSecondaryIndexes", [])}
    for ix in spec.indexes:
        if ix.name not in have:
            await ddb.update_table(
                TableName=spec.name,
                AttributeDefinitions=spec._attributes(),
                GlobalSecondaryIndexUpdates=[{"Create": _index_def(ix)}],
            )
            await _wait_active(ddb, spec.name)
            report.indexes_added.append(f"{spec.name}/{ix.name}")
    if spec.stream and not table.get("StreamSpecification", {}).get("StreamEnabled"):
        await ddb.update_table(
            TableName=spec.name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        )
        report.streams_enabled.append(spec.name)
    if spec.ttl_attribute:
        await _ensure_ttl(ddb, spec.name, spec.ttl_attribute)


async def _ensure_ttl(ddb: Any, name: str, attribute: str) -> None:
    """Items expire by `attribute` (epoch seconds). A server without TTL leaves them: each
    carries its time in its key, so an old one is never read again, only kept."""
    try:
        described = (await ddb.describe_time_to_live(TableName=name)).get("TimeToLiveDescription", {})
        if described.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            await ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    except Exception as exc:  # noqa: BLE001 - a local server without the TTL calls
        log.warning("setup.ttl_unavailable", table=name, error=f"{type(exc).__name__}: {exc}"[:200])


async def ensure_tables(ddb: Any, tables: Tables, only: list[str] | None = None) -> SetupReport:
    """Create every missing table and finish incomplete ones; a second run changes nothing."""
    report = SetupReport()
    for spec in table_specs(tables):
        if only and spec.name not in only:
            continue
        table = await _describe(ddb, spec.name)
        if table is None:
            await _create(ddb, spec)
            await _wait_active(ddb, spec.name)
            report.created.append(spec.name)
        else:
            await _finish(ddb, spec, table, report)
    return report


async def has_index(ddb: Any, table: str, index: str) -> bool:
    desc = await _describe(ddb, table)
    return any(ix["IndexName"] == index for ix in (desc or {}).get("GlobalSecondaryIndexes", []))


async def stream_arn(ddb: Any, table: str) -> str:
    desc = await _describe(ddb, table)
    arn = (desc or {}).get("LatestStreamArn")
    if not arn:
        raise RuntimeError(f"table {table} has no stream; run `agentstream setup`")
    return arn
