"""The bare loop `bench worker` weighs the worker's backlog pass against: an aiokafka consumer
that makes, for each event of the backlog, the DynamoDB calls the worker makes for it, with the
worker's client (`hot_dynamodb_client`) and concurrency (a conversation's events in order, up
to 1 000 in flight across conversations), and nothing else: no Faust, no event model, no fold,
no model call, no reply published.

Per event, as the worker does on a backlog whose replies are logged:
- a conversation's first event: its projection items (one BatchGetItem), whether `forget` erased
  the customer (one GetItem: the worker asks for a customer it has no state of, every one of this
  backlog's) and its log up to there (one Query);
- an inbound: the events after it (one Query, where the worker looks for its reply) and the
  projections' write: one transaction of the customer's state items as the worker left them
  (`stored_states`, read after the worker's pass), a sessions item and the inbound's and its
  reply's messages items, built from the events to the fold's sizes;
- a reply: nothing (the worker folds it with its inbound).

The loop runs on tables of its own, holding the same backlog as the worker's did when it
started (ministack's calls cost more as its tables grow: the worker's tables, which the worker
has filled, would make the loop slower than it is).

The calls it made, by operation, come back with its rate, so the bench shows they match the
worker's own count."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from agentstream.adapters.dynamo.client import dynamodb_client, scan_all
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.lean_client import hot_dynamodb_client
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import stream_id
from agentstream.metrics import DYNAMODB_CALLS
from agentstream.projections.base import Put
from agentstream.registry import PROJECTIONS
from agentstream.settings import Settings
from agentstream.streams.replier import REPLY_LOOKAHEAD
from agentstream.streams.keyed import KeyedExecutor


@dataclass(frozen=True)
class BareRun:
    rate: float  # events a second
    calls_per_event: dict[str, float]  # by DynamoDB operation


def calls_by_operation() -> dict[str, float]:
    """This process's DynamoDB calls so far, by operation."""
    return {s.labels["operation"]: s.value for metric in DYNAMODB_CALLS.collect() for s in metric.samples
            if s.name.endswith("_total") and s.labels["service"] == "dynamodb"}


class _Calls:
    """The worker's calls for one conversation's events, made bare."""

    def __init__(self, store: EventStore, projections: ProjectionStore, states: dict[str, list[Put]]) -> None:
        self._store, self._projections, self._states = store, projections, states
        self._loaded: set[str] = set()

    async def event(self, event: dict[str, Any]) -> None:
        stream = event["streamId"]
        if stream not in self._loaded:
            self._loaded.add(stream)
            await self._projections.load_states(PROJECTIONS, event["businessId"], event["userId"])
            # the worker found no state for any of the backlog's customers, so it asked whether `forget` erased them
            await self._store.forgotten_at(event["businessId"], event["userId"])
            await self._store.read_items(stream, after_seq=0)
        if event["type"] != "MessageReceived":
            return
        later = await self._store.read_items(stream, after_seq=int(event["seq"]), limit=REPLY_LOOKAHEAD)
        reply = next((i for i in later if i.get("type") == "ReplyGenerated"), None)
        rows = [_row(e) for e in (event, reply) if e is not None]
        await self._projections.write([*self._states.get(stream, []), _session(event), *rows])


def _row(event: dict[str, Any]) -> Put:
    """A messages item the size of the conversation fold's."""
    return Put("messages", {"messageId": event["eventId"], "sessionId": event["streamId"],
                            "businessId": event["businessId"], "userId": event["userId"], "seq": int(event["seq"]),
                            "type": event["type"], "content": (event.get("payload") or {}).get("content", ""),
                            "timestamp": event["occurredAt"], "metadata": {"channel": event.get("channel", "")}},
               position="seq")


def _session(event: dict[str, Any]) -> Put:
    """A sessions item the size of the conversation fold's."""
    at = event["occurredAt"]
    return Put("sessions", {"sessionId": event["streamId"], "businessId": event["businessId"],
                            "userId": event["userId"], "locationId": event.get("locationId", ""), "status": "active",
                            "createdAt": at, "updatedAt": at, "lastMessageAt": at, "expiresAt": at, "nextDueAt": at,
                            "dueShard": 0, "lastSeq": int(event["seq"]), "metadata": {"channel": event.get("channel", "")}})


async def stored_states(s: Settings) -> dict[str, list[Put]]:
    """Every customer's state items in the projections' tables, by stream, as puts."""
    states: dict[str, list[Put]] = {}
    async with dynamodb_client(s) as ddb:
        for p in PROJECTIONS:
            for item in await scan_all(ddb, TableName=getattr(s.tables, p.table), ConsistentRead=True):
                states.setdefault(stream_id(item["businessId"], item["userId"]), []).append(
                    Put(p.table, item, version=p.version))
    return states


async def bare_loop_rate(s: Settings, total: int, states: dict[str, list[Put]], max_inflight: int = 1000) -> BareRun:
    """Consume the whole events topic making the worker's calls for each event, with `states`
    (`stored_states` of the worker's tables) as the state items it writes; events/s."""
    consumer = AIOKafkaConsumer(s.topic_events, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    before = calls_by_operation()
    await consumer.start()
    try:
        async with hot_dynamodb_client(s) as ddb:
            calls = _Calls(EventStore(ddb, s.tables.events), ProjectionStore(ddb, s.tables), states)
            executor, count, start = KeyedExecutor(max_inflight), 0, time.perf_counter()
            while count < total:
                for records in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                    for record in records:
                        count += 1
                        await executor.submit(record.key.decode(), _job(calls, record.value))
            await executor.join()
            elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    after = calls_by_operation()
    per = {op: round((n - before.get(op, 0.0)) / max(count, 1), 3) for op, n in sorted(after.items())}
    return BareRun(count / elapsed, {op: n for op, n in per.items() if n})


def _job(calls: _Calls, raw: bytes) -> Any:
    async def job() -> None:
        await calls.event(orjson.loads(raw))
    return job
