"""Publishes log events the stream lost (invariant 7): the events table is the truth.

For every conversation, the events past what its least advanced projection applied (the
lowest lastSeq of the registered projections' state items) are published again to `agent.events.v1`, in seq order. The worker skips what it
has already seen, so running this too often costs reads, never correctness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agentstream.adapters.dynamo import from_item, to_item
from agentstream.adapters.event_store import IDEM_PREFIX, TOMBSTONE_PREFIX, EventStore
from agentstream.adapters.kafka import dumps

log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    streams: int = 0
    behind: int = 0
    published: int = 0


async def stream_heads(ddb: Any, table: str, segments: int = 4) -> dict[str, int]:
    """The highest seq of every conversation in the log (parallel scan)."""

    async def segment(n: int) -> dict[str, int]:
        heads: dict[str, int] = {}
        paginator = ddb.get_paginator("scan")
        async for page in paginator.paginate(TableName=table, Segment=n, TotalSegments=segments,
                                             ProjectionExpression="streamId, seq"):
            for item in page.get("Items", []):
                stream, seq = item["streamId"]["S"], int(item["seq"]["N"])
                if not stream.startswith((IDEM_PREFIX, TOMBSTONE_PREFIX)):
                    heads[stream] = max(seq, heads.get(stream, 0))
        return heads

    merged: dict[str, int] = {}
    for part in await asyncio.gather(*(segment(n) for n in range(segments))):
        for stream, seq in part.items():
            merged[stream] = max(seq, merged.get(stream, 0))
    return merged


async def applied_seq(ddb: Any, state_tables: Sequence[str], stream: str) -> int:
    """What every projection has applied of a stream: the lowest lastSeq of its state items."""
    business_id, _, user_id = stream.partition("#")
    seqs = []
    for table in state_tables:
        resp = await ddb.get_item(TableName=table, Key=to_item({"businessId": business_id, "userId": user_id}),
                                  ProjectionExpression="lastSeq", ConsistentRead=True)
        seqs.append(int(from_item(resp["Item"]).get("lastSeq", 0)) if "Item" in resp else 0)
    return min(seqs, default=0)


async def reconcile(ddb: Any, store: EventStore, producer: Any, events_table: str, state_tables: Sequence[str],
                    topic: str, business_id: str | None = None) -> ReconcileReport:
    """Publish every event past each conversation's applied seq; returns what it did."""
    report = ReconcileReport()
    heads = await stream_heads(ddb, events_table)
    for stream, head in sorted(heads.items()):
        if business_id and not stream.startswith(business_id + "#"):
            continue
        report.streams += 1
        done = await applied_seq(ddb, state_tables, stream)
        if head <= done:
            continue
        report.behind += 1
        for event in await store.read(stream, after_seq=done):
            await producer.send(topic, key=stream.encode(), value=dumps(event.to_json_dict()))
            report.published += 1
    await producer.flush()
    log.info("reconcile.done", streams=report.streams, behind=report.behind, published=report.published)
    return report
