"""Provable erasure: `forget` with a signed receipt (`agentstream forget --proof FILE`).

Before anything is erased, the broker is asked how long each of the product's topics keeps
records (a broker that cannot be asked stops the command with nothing erased). Then `forget`
runs, and the customer's items are looked for again by reading, with consistent reads of the
base tables: the log by Query on the streamId, the idempotency records (every deleted key and
what the index eventStreamId-index still finds, confirmed by consistent reads), every registered
projection's state item by key and every key `forget` deleted, the sessions through the
businessId-userId GSI, the messages through the businessId-timestamp index (filtered by
userId) and through the sessions' index, the inbox's view state of those sessions, and, for a
table no index covers, a filtered scan. The reads go through adapters/dynamo/erasure_store.py.
The receipt (agentstream/receipt.py) records the counts; a replay cannot check this, because
the stream it would compare with is gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aiokafka.partitioner import DefaultPartitioner

from agentstream import receipt as receipts
from agentstream.adapters.dynamo.credentials import CredentialsError
from agentstream.adapters.kafka.client import KafkaClients, topics
from agentstream.adapters.dynamo.tables import MESSAGES_BY_BUSINESS
from agentstream.adapters.media_bucket import customer_prefix
from agentstream.events import iso, utc_now
from agentstream.projections.base import Projection
from agentstream.registry import PROJECTIONS
from agentstream.streams.forget import ForgetConfig, ForgetReport, ForgetStores, MediaFiles, forget, tombstone_key

RETENTION_CONFIGS = ("cleanup.policy", "retention.ms", "segment.ms")
CUSTOMER_KEY = ("businessId", "userId")


class ErasureConfig(ForgetConfig, Protocol):
    @property
    def credentials_key(self) -> str | None: ...


def receipt_keys(settings: ErasureConfig) -> receipts.ReceiptKeys:
    if not settings.credentials_key:
        raise CredentialsError("AGENTSTREAM_SECRET_KEY is not set: it signs erasure receipts and checks them "
                               "(`make up` writes one to .env; `agentstream credentials keygen` makes one)")
    return receipts.ReceiptKeys(settings.credentials_key)


async def topic_retention(kafka: KafkaClients, names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Per topic: its cleanup policy, retention.ms, segment.ms and partitions (None: no such topic)."""
    configs = await kafka.topic_configs(names, RETENTION_CONFIGS)
    present = [n for n in names if configs[n] is not None]
    partitions = await kafka.partitions_of(present) if present else {}
    return {n: None if configs[n] is None else {**configs[n], "partitions": partitions.get(n, [])} for n in names}


def kafka_holdings(retention: dict[str, dict[str, Any] | None], stream: str, forgotten_at: str) -> list[dict[str, Any]]:
    """What each topic may still hold of the stream and until when. Kafka deletes a whole
    segment once its newest record is older than retention.ms, and a segment takes records for
    up to segment.ms: a record written before the erasure is gone by forgottenAt + segment.ms +
    retention.ms at the latest (`until`; `agedOutAt` = forgottenAt + retention.ms is when the
    records themselves pass the retention). A compacted-only topic or unlimited retention has no bound."""
    erased = datetime.fromisoformat(forgotten_at.replace("Z", "+00:00"))
    held: list[dict[str, Any]] = []
    for topic, config in retention.items():
        if config is None:
            held.append({"topic": topic, "exists": False, "until": None})
            continue
        parts = config["partitions"]
        entry: dict[str, Any] = {
            "topic": topic, "exists": True,
            "partition": DefaultPartitioner()(stream.encode(), parts, parts) if parts else None,  # records keyed by the stream
            "cleanupPolicy": config.get("cleanup.policy"), "retentionMs": int(config.get("retention.ms") or -1),
            "segmentMs": int(config.get("segment.ms") or 0), "agedOutAt": None, "until": None,
        }
        if "delete" in str(entry["cleanupPolicy"]).split(",") and entry["retentionMs"] >= 0:
            entry["agedOutAt"] = iso(erased + timedelta(milliseconds=entry["retentionMs"]))
            entry["until"] = iso(erased + timedelta(milliseconds=entry["retentionMs"] + entry["segmentMs"]))
        held.append(entry)
    return held


def _owned(registry: Sequence[Projection]) -> dict[str, tuple[str, ...]]:
    owned: dict[str, tuple[str, ...]] = {}
    for p in registry:
        owned.setdefault(p.table, CUSTOMER_KEY)
        owned.update(p.owns)
    return owned


async def left_over(stores: ForgetStores, settings: ForgetConfig, business_id: str, user_id: str,
                    deleted: dict[str, list[dict[str, Any]]], registry: Sequence[Projection] = PROJECTIONS) -> dict[str, int]:
    """The customer's items read after the erasure: "events", "idempotency_records", each
    table of every registered projection (a `Tables` field) and "inbox_views" -> how many are
    still there."""
    t = settings.tables
    stream = f"{business_id}#{user_id}"
    store = stores.erasure
    left = {
        "events": len(await store.log_keys(t.events, stream, consistent=True)),
        "idempotency_records": len(await store.existing(t.events, [
            *deleted.get("idempotency_records", []), *await stores.log.idempotency_keys(stream)])),
    }
    of_user = await stores.sessions_of_user(business_id, user_id)
    sessions = {k["sessionId"] for k in [*deleted.get("sessions", []), *of_user]}
    for where, names in _owned(registry).items():
        table = getattr(t, where)
        found = list(deleted.get(where, []))
        if names == CUSTOMER_KEY:
            found.append({"businessId": business_id, "userId": user_id})
        elif where == "sessions":
            found += of_user
        elif where == "messages":
            found += await store.customer_items(table, business_id, user_id, index=MESSAGES_BY_BUSINESS)
            for session_id in sessions:
                found += await stores.states.session_messages(session_id)
        else:  # a table no index of the customer covers
            found += await store.customer_items(table, business_id, user_id)
        # what an index found is confirmed by a consistent read of the table (an index lags a delete)
        left[where] = len(await store.existing(table, [{n: k[n] for n in names} for k in found]))
    views = [*deleted.get("inbox_views", []), *await stores.views.of_sessions(business_id, sessions)]
    left["inbox_views"] = len(await store.existing(t.inbox_views, views))
    left["widget_visitors"] = len(await store.existing(t.widget_visitors, [{"businessId": business_id, "userId": user_id}]))
    return left


async def forget_with_receipt(stores: ForgetStores, kafka: KafkaClients, settings: ErasureConfig, business_id: str,
                              user_id: str, registry: Sequence[Projection] = PROJECTIONS,
                              media: MediaFiles | None = None) -> tuple[ForgetReport, dict[str, Any]]:
    """Erase the customer (`forget`) and return its report and the signed receipt (the media
    bucket's objects counted under "media")."""
    keys = receipt_keys(settings)
    retention = await topic_retention(kafka, topics(settings))
    t = settings.tables
    report = await forget(stores, settings, business_id, user_id, registry, media)
    left = await left_over(stores, settings, business_id, user_id, report.keys, registry)
    if media is not None:
        left["media"] = len(await media.keys(customer_prefix(business_id, user_id)))
    tomb = tombstone_key(business_id, user_id)
    present = await stores.erasure.has(t.events, tomb)
    tables = {where: t.events if where == "idempotency_records" else f"s3://{media.bucket}" if where == "media" and media
              else getattr(t, where) for where in [*report.keys, *left]}
    receipt = receipts.build(
        keys, business_id=business_id, user_id=user_id, forgotten_at=report.forgotten_at, issued_at=iso(utc_now()),
        tombstone=tomb, tombstone_present=present, tables=tables, deleted=report.keys, left=left,
        kafka=kafka_holdings(retention, f"{business_id}#{user_id}", report.forgotten_at))
    return report, receipt


def write_receipt(path: Path, receipt: dict[str, Any]) -> None:
    """Write the receipt whole or not at all (a temporary file beside it, then a rename)."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(receipts.dumps(receipt), encoding="utf-8")
    os.replace(part, path)
