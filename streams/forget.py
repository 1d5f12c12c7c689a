"""`forget`: erase one customer of one business from the log and every registered projection.

A tombstone (PK `forgotten#<business>#<user>` in the events table) stays behind, so a late
Kafka record never brings the user back through the worker; a replay has no events left to
fold. The tombstone keeps the hashes of the erased messages' external ids (`erasedIds`), so a
vendor's replayed webhook of one of them is acknowledged and appends nothing. Each projection's items are found by folding the customer's stream before it is deleted
(the folds are deterministic, so that is every item they wrote), plus the state item and, for
sessions and messages, the seed's indexes; an item counts as deleted if it existed. The
customer's files in the media bucket (keyed under their stream) are deleted by prefix (report
place "media"). The
idempotency records are found through the index eventStreamId-index (each names its event's
stream), so forget reads what the customer has, never the whole events table. The inbox's view
state of the customer's sessions (`ai-agent-inbox-views`, keyed by businessId and
`<sessionId>#<reader>`) goes too: one Query per session (report place "inbox_views"). Kafka
keeps its copies until the topics' retention: the report says so. The report keeps the deleted
keys and the tombstone's time, for the signed receipt of `forget --proof` (streams/erasure.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentstream.adapters.dynamo.event_store import IDEM_PREFIX, TOMBSTONE_PREFIX, erased_id
from agentstream.adapters.kafka.client import topics
from agentstream.events import iso, utc_now
from agentstream.projections.base import Projection, fold_events, key_of
from agentstream.registry import PROJECTIONS
from agentstream.streams.ports import Directory, EventLog, StateStore, StoreConfig
from agentstream.streams.reply_policy import fold_config

Key = tuple[Any, ...]
ItemKey = dict[str, Any]  # an item's key attributes and values


def tombstone_key(business_id: str, user_id: str) -> dict[str, Any]:
    return {"streamId": f"{TOMBSTONE_PREFIX}{business_id}#{user_id}", "seq": 0}


@dataclass
class ForgetReport:
    events: int = 0
    idempotency_records: int = 0
    items: dict[str, int] = field(default_factory=dict)  # projection table -> items deleted
    still_in_kafka: list[str] = field(default_factory=list)
    forgotten_at: str = ""  # the tombstone's forgottenAt
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "events", "idempotency_records", projection tables, "inbox_views" -> deleted keys

    @property
    def sessions(self) -> int:
        return self.items.get("sessions", 0)

    @property
    def messages(self) -> int:
        return self.items.get("messages", 0)

    @property
    def memory(self) -> int:
        return self.items.get("rag_user", 0)


class MediaFiles(Protocol):
    """The media bucket, as `forget` uses it."""

    bucket: str

    async def delete_customer(self, business_id: str, user_id: str) -> list[str]: ...

    async def keys(self, prefix: str) -> list[str]: ...


class ForgetConfig(StoreConfig, Protocol):
    """The tables, and the product's topics (what `forget` reports each keeps)."""

    @property
    def topic_events(self) -> str: ...

    @property
    def topic_replies(self) -> str: ...

    @property
    def topic_dlq(self) -> str: ...

    @property
    def topic_shadow(self) -> str: ...

    @property
    def topic_handoffs(self) -> str: ...


class ErasureTables(Protocol):
    """The erasure's reads and deletes by table and key (`adapters/dynamo/erasure_store.ErasureStore`)."""

    async def put_tombstone(self, table: str, key: ItemKey, forgotten_at: str) -> None: ...

    async def keep_erased_ids(self, table: str, key: ItemKey, hashes: list[str]) -> None: ...

    async def has(self, table: str, key: ItemKey) -> bool: ...

    async def log_keys(self, table: str, stream: str, consistent: bool = False) -> list[ItemKey]: ...

    async def delete(self, table: str, keys: list[ItemKey]) -> int: ...

    async def existing(self, table: str, keys: list[ItemKey]) -> list[ItemKey]: ...

    async def customer_items(self, table: str, business_id: str, user_id: str, index: str | None = None) -> list[ItemKey]: ...


class ForgetLog(EventLog, Protocol):
    async def idempotency_keys(self, stream: str) -> list[ItemKey]:
        """The keys of the idempotency records of a stream's events."""
        ...


class SessionViews(Protocol):
    """The inbox's view state (`adapters/dynamo/inbox_views.InboxViews`)."""

    async def of_sessions(self, business_id: str, session_ids: Iterable[str]) -> list[ItemKey]: ...


@dataclass(frozen=True)
class ForgetStores:
    """What `forget` (and its receipt's check) reads and deletes; `sessions_of_user(business,
    user)` lists the customer's sessions through the index the seed made."""

    log: ForgetLog
    states: StateStore
    erasure: ErasureTables
    views: SessionViews
    directory: Directory
    sessions_of_user: Callable[[str, str], Awaitable[list[ItemKey]]]


async def forget(stores: ForgetStores, settings: ForgetConfig, business_id: str, user_id: str,
                 registry: Sequence[Projection] = PROJECTIONS, media: MediaFiles | None = None) -> ForgetReport:
    """Erase the customer; `media`: the media bucket, whose objects of the customer go too."""
    t = settings.tables
    stream = f"{business_id}#{user_id}"
    report = ForgetReport(forgotten_at=iso(utc_now()))
    store = stores.erasure
    await store.put_tombstone(t.events, tombstone_key(business_id, user_id), report.forgotten_at)
    events = await stores.log.read(stream)
    keys = await _projected_keys(stores, settings, registry, events, business_id, user_id)
    for field_name, (names, found) in keys.items():
        candidates = [dict(zip(names, k)) for k in found]
        report.keys[field_name] = await store.existing(getattr(t, field_name), candidates)
        await store.delete(getattr(t, field_name), candidates)
        report.items[field_name] = len(report.keys[field_name])
    sessions = {k[0] for k in keys["sessions"][1]} if "sessions" in keys else set()
    views = await stores.views.of_sessions(business_id, sessions)
    report.items["inbox_views"] = await store.delete(t.inbox_views, views)
    report.keys["inbox_views"] = views
    visitor = [{"businessId": business_id, "userId": user_id}]  # a widget visitor's token record
    report.keys["widget_visitors"] = await store.existing(t.widget_visitors, visitor)
    report.items["widget_visitors"] = await store.delete(t.widget_visitors, report.keys["widget_visitors"])
    if media is not None:  # the customer's photos, voice notes and documents
        report.keys["media"] = [{"key": k} for k in await media.delete_customer(business_id, user_id)]
        report.items["media"] = len(report.keys["media"])
    logged = await store.log_keys(t.events, stream)
    report.events = await store.delete(t.events, logged)
    report.keys["events"] = logged
    idem = await stores.log.idempotency_keys(stream)
    hashes = [erased_id(business_id, k["streamId"].removeprefix(f"{IDEM_PREFIX}{business_id}#")) for k in idem]
    if hashes:  # a replayed webhook of an erased message is refused, not appended again
        await store.keep_erased_ids(t.events, tombstone_key(business_id, user_id), sorted(set(hashes)))
    report.idempotency_records = await store.delete(t.events, idem)
    report.keys["idempotency_records"] = idem
    report.still_in_kafka = [
        f"{topic}: records keyed {stream!r} remain until the topic's retention (default 7 days) deletes them"
        for topic in topics(settings)
    ]
    return report


async def _projected_keys(stores: ForgetStores, settings: ForgetConfig, registry: Sequence[Projection], events: list[Any],
                          business_id: str, user_id: str) -> dict[str, tuple[tuple[str, ...], set[Key]]]:
    """Per projection table: its key attributes and the keys of the customer's items in it."""
    config = fold_config(await stores.directory.info(business_id) or {}, settings.session_idle_minutes)
    keys: dict[str, tuple[tuple[str, ...], set[Key]]] = {}
    for p in registry:
        for table, names in p.owns.items():
            keys.setdefault(table, (names, set()))
        keys[p.table][1].add((business_id, user_id))
        for put in fold_events(p, events, config, business_id, user_id)[1]:
            keys[put.table][1].add(key_of(p, put))
    if "sessions" in keys and "messages" in keys:  # also what the seed's indexes find
        for session in await stores.sessions_of_user(business_id, user_id):
            keys["sessions"][1].add((session["sessionId"],))
            for m in await stores.states.session_messages(session["sessionId"]):
                keys["messages"][1].add((m["messageId"], m["sessionId"]))
    return keys
