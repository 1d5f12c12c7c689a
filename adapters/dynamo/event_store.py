"""The event log in DynamoDB: gapless per-stream seq, idempotent appends (docs/architecture.md:
"ordered, gapless streams", "idempotent ingestion").

An event is an item (PK streamId, SK seq) that also carries when it was appended:
`ingestedAt` (the appender's clock) and `ingestBucket` (its hour, `YYYY-MM-DDTHH`), the keys of
the index ingestBucket-ingestedAt-index, which finds what was appended in a time window
(reconcile); both are storage only and never part of the event. An external id (a channel's message id, or a
derived key such as `reply:<inboundEventId>`) is recorded as an idempotency item
(PK `idem#<businessId>#<key>`, SK 0) written in the same transaction as the event, with
`attribute_not_exists` on both; a second append with the same key returns the first event. It
names its event's stream (`eventStreamId`), so the index eventStreamId-index finds a
customer's records without reading anyone else's (forget). `append_with` writes side items
(adapters/side_items.py) in the append's transaction, in the same namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from agentstream.adapters.dynamo.client import error_code, from_item, query_all, to_item
from agentstream.adapters.side_items import SideItem, SideRefused, located, refused, transact_item
from agentstream.adapters.dynamo.tables import EVENTS_BY_ID, EVENTS_BY_INGEST, EVENTS_BY_STREAM
from agentstream.events import Event, iso, now_ms, parse_event, utc_now
from agentstream.metrics import APPEND_CONFLICTS

log = structlog.get_logger(__name__)
IDEM_PREFIX = "idem#"
TOMBSTONE_PREFIX = "forgotten#"
STORAGE_ONLY = ("ingestedAt", "ingestBucket")  # attributes of a stored event that are not the event's


class AppendFailed(RuntimeError):
    """The append did not go through after all retries."""


@dataclass(frozen=True)
class AppendResult:
    event: Event
    duplicate: bool


def idem_key(business_id: str, external_id: str) -> str:
    return f"{IDEM_PREFIX}{business_id}#{external_id}"


def erased_id(business_id: str, external_id: str) -> str:
    """How a tombstone keeps an erased message's external id: a hash (the id itself is gone)."""
    return hashlib.sha256(idem_key(business_id, external_id).encode()).hexdigest()[:32]


def idem_item(business_id: str, external_id: str, event: Event) -> dict[str, Any]:
    """The record that finds `event` by a channel's (or a reply's) own id; seq 0, never an event."""
    return {"streamId": idem_key(business_id, external_id), "seq": 0, "eventId": event.eventId,
            "eventStreamId": event.streamId, "eventSeq": event.seq}


def is_event_item(item: dict[str, Any]) -> bool:
    """Idempotency records share the table; they are not events."""
    return "eventId" in item and not str(item.get("streamId", "")).startswith((IDEM_PREFIX, TOMBSTONE_PREFIX))


def _side_key(business_id: str, name: str) -> dict[str, Any]:
    return {"streamId": idem_key(business_id, name), "seq": 0}


def ingest_bucket(at: str) -> str:
    """The hour an `ingestedAt` falls in: the ingest index's partition."""
    return at[:13]


def log_item(event: Event, ingested_at: datetime | None = None) -> dict[str, Any]:
    """The events-table item of a numbered event: the event and when it was appended."""
    at = iso(ingested_at or utc_now())
    return {**event.to_json_dict(), "ingestedAt": at, "ingestBucket": ingest_bucket(at)}


def event_body(item: dict[str, Any]) -> dict[str, Any]:
    """A stored event item without its storage-only attributes: the event as published."""
    return {k: v for k, v in item.items() if k not in STORAGE_ONLY}


def event_from_item(item: dict[str, Any]) -> Event:
    return parse_event(event_body(item))


@dataclass
class _Turn:
    """The appends to one stream queued in this process, and the seq the last of them wrote."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    written: int | None = None


class EventStore:
    """Append to and read from the events table."""

    def __init__(self, ddb: Any, table: str, max_attempts: int = 50, head_cache: int = 0) -> None:
        """`head_cache`: remember the heads of that many streams this process appended to. Only
        for a stream's sole writer (a bulk import): a conversation is appended to by the gateway,
        the worker and delivery in turn, so a remembered head is mostly stale and costs a failed
        transaction; by default the head is read (one Query) unless the caller knows it."""
        self._ddb = ddb
        self._table = table
        self._max_attempts = max_attempts
        self._heads: OrderedDict[str, int] = OrderedDict()
        self._head_cache = head_cache
        self._turns: dict[str, _Turn] = {}

    async def append(self, event: Event, external_id: str | None = None, aliases: tuple[str, ...] = (),
                     head: int | None = None, guessed: bool = False) -> AppendResult:
        """Append at head + 1; with an external id, at most once per (business, id).

        `aliases` are further ids that find the event later (e.g. the channel's id of a sent reply).
        `head` is the stream's head as the caller has just read it, which saves reading it again
        (if another event got there first, the append reads the head and tries again). A
        `guessed` head is one the caller did not read (adapters/settled_heads.py): the write
        also checks that the event at `head` exists, so a guess too high fails instead of
        leaving a gap. Appends to one stream take turns in this process, so they never race
        each other; one queued behind another starts from the seq that one wrote when its
        `head` is older."""
        async with self._turn(event.streamId) as turn:
            if head is not None and turn.written is not None:
                head = max(head, turn.written)
            result = await self._append(event, external_id, aliases, head, guessed)
            turn.written = result.event.seq if not result.duplicate else turn.written
            return result

    async def append_with(self, event: Event, side: Sequence[SideItem], external_id: str | None = None,
                          head: int | None = None) -> AppendResult:
        """`append`, with side items in the same transaction: all go in or none (`SideRefused`
        names the side items whose condition failed); a duplicate external id returns the first
        event and changes no side item."""
        async with self._turn(event.streamId) as turn:
            if head is not None and turn.written is not None:
                head = max(head, turn.written)
            result = await self._append(event, external_id, (), head, side=tuple(side))
            turn.written = result.event.seq if not result.duplicate else turn.written
            return result

    async def set_side(self, business_id: str, name: str, values: dict[str, Any]) -> None:
        """Set a side item's values whatever it held (a replay rebuilding it: never an add)."""
        await self._ddb.put_item(TableName=self._table, Item=to_item({**_side_key(business_id, name), **values}))

    async def side(self, business_id: str, name: str) -> dict[str, Any] | None:
        """A side item's values, None if there is none."""
        resp = await self._ddb.get_item(TableName=self._table, Key=to_item(_side_key(business_id, name)), ConsistentRead=True)
        return {k: v for k, v in from_item(resp["Item"]).items() if k not in ("streamId", "seq")} if "Item" in resp else None

    async def _append(self, event: Event, external_id: str | None, aliases: tuple[str, ...],
                      head: int | None, guessed: bool = False, side: tuple[SideItem, ...] = ()) -> AppendResult:
        for attempt in range(self._max_attempts):
            known = head if head is not None else self._heads.get(event.streamId)
            seq = (known if known is not None else await self.head(event.streamId)) + 1
            # a stream's first event: the transaction also checks that `forget` did not erase this message
            erased = erased_id(event.businessId, external_id) if seq == 1 and external_id is not None else None
            check = guessed and head is not None and seq > 1
            head = None
            stored = event.with_seq(seq)
            try:
                await self._write(stored, external_id, aliases, check, side, erased)
            except Exception as exc:
                outcome = await self._on_conflict(exc, event, external_id, side, erased)
                if outcome is not None:
                    return outcome
                APPEND_CONFLICTS.labels(event.type).inc()
                self._heads.pop(event.streamId, None)
                await asyncio.sleep(min(0.2, 0.002 * 2 ** min(attempt, 7)) * random.random())
                continue
            self._remember(event.streamId, seq)
            log.debug("event.appended", eventId=event.eventId, streamId=event.streamId, seq=seq, type=event.type)
            return AppendResult(stored, duplicate=False)
        raise AppendFailed(f"append to {event.streamId} failed after {self._max_attempts} attempts")

    @asynccontextmanager
    async def _turn(self, stream: str) -> AsyncIterator["_Turn"]:
        """This process's turn to append to `stream`; the record lives while appends queue for it."""
        turn = self._turns.setdefault(stream, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                yield turn
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._turns[stream]

    def append_items(self, event: Event, external_id: str, side: Sequence[SideItem] = ()) -> list[dict[str, Any]]:
        """The transaction items that append `event` at its own seq, once per `external_id` (with
        `side` items after them): for a caller that writes them in one transaction with items of
        its own. Each is conditional, so the transaction is cancelled if the seq is taken or the
        id recorded already (the cancellation's first two reasons say which)."""
        return [{"Put": self._log_put(event)}, {"Put": self._idem_put(event, external_id)}, *self.side_items(event, side)]

    def side_items(self, event: Event, side: Sequence[SideItem]) -> list[dict[str, Any]]:
        """The transaction items of `event`'s side items."""
        return [transact_item(*located(s, self._table, _side_key(event.businessId, s.name)), s) for s in side]

    def _log_put(self, event: Event) -> dict[str, Any]:
        return {"TableName": self._table, "Item": to_item(log_item(event)), "ConditionExpression": "attribute_not_exists(streamId)"}

    def _idem_put(self, event: Event, external_id: str) -> dict[str, Any]:
        return {"TableName": self._table, "Item": to_item(idem_item(event.businessId, external_id, event)),
                "ConditionExpression": "attribute_not_exists(streamId)"}

    async def _write(self, event: Event, external_id: str | None, aliases: tuple[str, ...] = (),
                     check_previous: bool = False, side: tuple[SideItem, ...] = (), erased: str | None = None) -> None:
        """The event's put (and its idempotency records and side items, in one transaction); with
        `check_previous`, the transaction's last item checks that the event before it exists; with
        `erased` (the hash of the message's external id), that the customer's tombstone does not
        hold it (the last item, after that one)."""
        checks = [self._previous_exists(event)] if check_previous else []
        checks += [self._not_erased(event, erased)] if erased else []
        sides = self.side_items(event, side)
        if external_id is None and not checks and not sides:
            await self._ddb.put_item(**self._log_put(event))
            return
        first = self.append_items(event, external_id) if external_id is not None else [{"Put": self._log_put(event)}]
        extra = [{"Put": {"TableName": self._table, "Item": to_item(idem_item(event.businessId, a, event))}} for a in aliases]
        await self._ddb.transact_write_items(TransactItems=[*first, *extra, *sides, *checks])

    def _not_erased(self, event: Event, erased: str) -> dict[str, Any]:
        key = {"streamId": f"{TOMBSTONE_PREFIX}{event.businessId}#{event.userId}", "seq": 0}
        return {"ConditionCheck": {"TableName": self._table, "Key": to_item(key),
                                   "ConditionExpression": "attribute_not_exists(erasedIds) OR NOT contains(erasedIds, :h)",
                                   "ExpressionAttributeValues": to_item({":h": erased})}}

    def _previous_exists(self, event: Event) -> dict[str, Any]:
        return {"ConditionCheck": {"TableName": self._table, "Key": to_item({"streamId": event.streamId, "seq": event.seq - 1}),
                                   "ConditionExpression": "attribute_exists(streamId)"}}

    async def _on_conflict(self, exc: Exception, event: Event, external_id: str | None,
                           side: tuple[SideItem, ...] = (), erased: str | None = None) -> AppendResult | None:
        """A duplicate external id returns the first event, and so does an erased one (nothing
        appended: the customer stays erased); a refused side item raises `SideRefused`; a seq race
        returns None (retry)."""
        code = error_code(exc)
        if code == "ConditionalCheckFailedException":
            return None
        if code != "TransactionCanceledException":
            raise exc
        reasons = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
        if external_id and len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            existing = await self.find(event.businessId, external_id)
            if existing is not None:
                return AppendResult(existing, duplicate=True)
        if erased and reasons and reasons[-1] == "ConditionalCheckFailed":
            log.info("event.erased_message_refused", streamId=event.streamId, type=event.type)
            return AppendResult(event, duplicate=True)
        if names := refused(side, reasons, external_id):
            raise SideRefused(names) from None
        return None

    async def find(self, business_id: str, external_id: str) -> Event | None:
        """The event recorded under an external id, if any."""
        resp = await self._ddb.get_item(
            TableName=self._table,
            Key=to_item({"streamId": idem_key(business_id, external_id), "seq": 0}),
            ConsistentRead=True,
        )
        if "Item" not in resp:
            return None
        idem = from_item(resp["Item"])
        return await self.get(idem["eventStreamId"], int(idem["eventSeq"]))

    async def by_id(self, event_id: str) -> Event | None:
        """A logged event by its eventId (the events table's eventId-index), None if not logged."""
        resp = await self._ddb.query(TableName=self._table, IndexName=EVENTS_BY_ID,
                                     KeyConditionExpression="eventId = :e", ExpressionAttributeValues=to_item({":e": event_id}))
        for key in map(from_item, resp.get("Items", [])):
            if not str(key["streamId"]).startswith((IDEM_PREFIX, TOMBSTONE_PREFIX)):
                return await self.get(key["streamId"], int(key["seq"]))
        return None

    async def ingested(self, since: datetime, until: datetime) -> dict[str, int]:
        """The streams that had events appended between `since` and `until` (the appenders'
        clocks), each with the lowest seq appended then: one Query per hour of the window on
        the ingest index (keys only), so the cost follows the window, not the table."""
        since, until = since.astimezone(timezone.utc), until.astimezone(timezone.utc)
        low, high = iso(since), iso(until)
        streams: dict[str, int] = {}
        hour = since.replace(minute=0, second=0, microsecond=0)
        while hour <= until:
            bucket = ingest_bucket(iso(hour))
            for key in await query_all(self._ddb, TableName=self._table, IndexName=EVENTS_BY_INGEST,
                                       KeyConditionExpression="ingestBucket = :b AND ingestedAt BETWEEN :lo AND :hi",
                                       ExpressionAttributeValues=to_item({":b": bucket, ":lo": low, ":hi": high})):
                stream, seq = str(key["streamId"]), int(key["seq"])
                streams[stream] = min(seq, streams.get(stream, seq))
            hour += timedelta(hours=1)
        return streams

    async def stream_heads(self) -> dict[str, int]:
        """The highest seq of every conversation in the log (a scan: replay's list)."""
        return await stream_heads(self._ddb, self._table)

    async def idempotency_keys(self, stream: str) -> list[dict[str, Any]]:
        """The keys (streamId, seq) of the idempotency records of a stream's events (the index
        eventStreamId-index: only those records carry eventStreamId)."""
        found = await query_all(self._ddb, TableName=self._table, IndexName=EVENTS_BY_STREAM,
                                KeyConditionExpression="eventStreamId = :s", ExpressionAttributeValues=to_item({":s": stream}))
        return [{"streamId": k["streamId"], "seq": int(k["seq"])} for k in found if str(k["streamId"]).startswith(IDEM_PREFIX)]

    async def has(self, business_id: str, external_id: str) -> bool:
        resp = await self._ddb.get_item(
            TableName=self._table,
            Key=to_item({"streamId": idem_key(business_id, external_id), "seq": 0}),
            ConsistentRead=True,
            ProjectionExpression="streamId",
        )
        return "Item" in resp

    async def claim(self, business_id: str, name: str, stream: str, owner: str, hold_ms: int) -> bool:
        """Take the claim `name` (an idempotency-namespace record, found by forget through its
        `eventStreamId`) for `hold_ms`, or keep it: False while another owner holds it unexpired,
        and for good once it is marked done (`mark_claim`)."""
        now = now_ms()
        item = {"streamId": idem_key(business_id, name), "seq": 0, "eventStreamId": stream,
                "claimedBy": owner, "claimUntil": now + hold_ms}
        try:
            await self._ddb.put_item(
                TableName=self._table, Item=to_item(item),
                ConditionExpression="(attribute_not_exists(streamId) OR claimUntil < :now OR claimedBy = :me)"
                                    " AND attribute_not_exists(doneAt)",
                ExpressionAttributeValues=to_item({":now": now, ":me": owner}))
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def mark_claim(self, business_id: str, name: str, marks: dict[str, Any]) -> None:
        """Mark the claim `name` done (`doneAt`, with `marks`): nobody claims it again. One
        uncontended write; a record erased meanwhile (forget) is not brought back."""
        values = {"doneAt": now_ms(), **marks}
        try:
            await self._ddb.update_item(
                TableName=self._table, Key=to_item({"streamId": idem_key(business_id, name), "seq": 0}),
                UpdateExpression="SET " + ", ".join(f"{k} = :{k}" for k in values),
                ConditionExpression="attribute_exists(streamId)",
                ExpressionAttributeValues=to_item({f":{k}": v for k, v in values.items()}))
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    async def claim_marks(self, business_id: str, name: str) -> dict[str, Any] | None:
        """What a claim done was marked with (`mark_claim`), or None while it is not done."""
        resp = await self._ddb.get_item(TableName=self._table,
                                        Key=to_item({"streamId": idem_key(business_id, name), "seq": 0}),
                                        ConsistentRead=True)
        item = from_item(resp["Item"]) if "Item" in resp else {}
        return item if "doneAt" in item else None

    async def forgotten_at(self, business_id: str, user_id: str) -> datetime | None:
        """When the user was erased (`agentstream forget`), if ever."""
        resp = await self._ddb.get_item(
            TableName=self._table, Key=to_item({"streamId": f"{TOMBSTONE_PREFIX}{business_id}#{user_id}", "seq": 0}),
            ConsistentRead=True,
        )
        if "Item" not in resp:
            return None
        return datetime.fromisoformat(from_item(resp["Item"])["forgottenAt"].replace("Z", "+00:00"))

    async def get(self, stream: str, seq: int) -> Event | None:
        resp = await self._ddb.get_item(
            TableName=self._table, Key=to_item({"streamId": stream, "seq": seq}), ConsistentRead=True
        )
        return event_from_item(from_item(resp["Item"])) if "Item" in resp else None

    async def read(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Events of a stream with seq > after_seq, in seq order."""
        return [event_from_item(i) for i in await self.read_items(stream, after_seq, limit)]

    async def read_items(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Like `read`, as plain items: nothing is parsed, so nothing is refused."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "streamId = :s AND seq > :q",
            "ExpressionAttributeValues": to_item({":s": stream, ":q": after_seq}),
            "ConsistentRead": True,
        }
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(items)
            resp = await self._ddb.query(**kwargs)
            items.extend(from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp or (limit is not None and len(items) >= limit):
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    async def head(self, stream: str) -> int:
        """The highest seq of a stream (0 when empty)."""
        resp = await self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="streamId = :s",
            ExpressionAttributeValues=to_item({":s": stream}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
            ProjectionExpression="seq",
        )
        items = resp.get("Items", [])
        return int(items[0]["seq"]["N"]) if items else 0

    def _remember(self, stream: str, seq: int) -> None:
        if self._head_cache <= 0:
            return
        self._heads[stream] = seq
        self._heads.move_to_end(stream)
        while len(self._heads) > self._head_cache:
            self._heads.popitem(last=False)


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
