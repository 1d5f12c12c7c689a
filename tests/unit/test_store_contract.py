"""One contract for the stores' ports (streams/ports.py), run against the in-memory stores, moto
and ministack alike, so the fakes the processor's unit tests run on cannot drift from DynamoDB:
gapless appends at head + 1, idempotent external ids, side items in the append's transaction,
monotonic projection puts, and transactions that go in whole or fail with the right reason."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import AliasChoices

from agentstream.adapters.dynamo.client import dynamodb_client, to_item
from agentstream.adapters.dynamo.event_store import TOMBSTONE_PREFIX, EventStore
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.config_history import ConfigHistory, info_key
from agentstream.adapters.dynamo.replay_store import BatchWriter, LiveItems
from agentstream.adapters.memory_stores import (
    MemoryConfigHistory, MemoryDirectory, MemoryEventStore, MemoryItems, MemoryProjectionStore, MemoryTables, memory_stores,
)
from agentstream.adapters.dynamo.projection_store import AppendRaced, ProjectionStore, StaleWrite
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import Event, new_event
from agentstream.metrics import APPEND_CONFLICTS
from agentstream.projections.base import Put
from agentstream.registry import PROJECTIONS
from agentstream.settings import Settings, Tables
from agentstream.streams.ports import (
    AddTo, Claim, ConfigVersions, Directory, EventLog, ItemBatches, LiveItemsPort, SideRefused, StateStore, StreamHeads,
    VersionedDirectory,
)


@dataclass
class Stores:
    log: EventLog
    states: StateStore
    forget: Callable[[str, str, str], Awaitable[None]]  # (business, user, forgottenAt): the tombstone forget writes
    tables: Tables
    live: LiveItemsPort  # replay's reads of the live items and its batched puts
    batches: ItemBatches
    history: ConfigVersions
    directory: Callable[[str, dict[str, Any]], Awaitable[VersionedDirectory]]  # a fresh one, the business's info stored


def _dynamo(ddb: Any, tables: Tables) -> Stores:
    async def forget(business: str, user: str, at: str) -> None:
        await ddb.put_item(TableName=tables.events, Item=to_item(
            {"streamId": f"{TOMBSTONE_PREFIX}{business}#{user}", "seq": 0, "forgottenAt": at}))

    async def directory(business: str, info: dict[str, Any]) -> VersionedDirectory:
        await ddb.put_item(TableName=tables.business_info, Item=to_item({"businessId": business, **info}))
        return BusinessDirectory(ddb, tables)

    return Stores(EventStore(ddb, tables.events), ProjectionStore(ddb, tables), forget, tables, LiveItems(ddb),
                  BatchWriter(ddb), ConfigHistory(ddb, tables.config_history), directory)


def _memory() -> Stores:
    log, states = memory_stores()
    db: MemoryTables = log.tables

    async def forget(business: str, user: str, at: str) -> None:
        db.put(db.names.events, {"streamId": f"{TOMBSTONE_PREFIX}{business}#{user}", "seq": 0, "forgottenAt": at})

    async def directory(business: str, info: dict[str, Any]) -> VersionedDirectory:
        return MemoryDirectory({business: {"businessId": business, **info}})

    items = MemoryItems(db)
    return Stores(log, states, forget, db.names, items, items, MemoryConfigHistory(), directory)


@pytest.fixture(scope="module")
async def ministack_ddb(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Tables]]:
    from tests.conftest import isolated_env

    env = isolated_env(request.getfixturevalue("endpoints"))
    aliases = {str(a.choices[0] if isinstance(a, AliasChoices) else a) for a in (f.validation_alias for f in Tables.model_fields.values())}
    settings = Settings(dynamodb_endpoint_url=env["DYNAMODB_ENDPOINT_URL"], aws_region="us-east-1",
                        tables=Tables(**{k: v for k, v in env.items() if k in aliases}))
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables)
        yield ddb, settings.tables


@pytest.fixture(params=["memory", "moto", pytest.param("ministack", marks=pytest.mark.integration)])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "memory":
        return _memory()
    if request.param == "moto":
        settings: Settings = request.getfixturevalue("moto_settings")
        return _dynamo(request.getfixturevalue("moto_ddb"), settings.tables)
    ddb, tables = request.getfixturevalue("ministack_ddb")
    return _dynamo(ddb, tables)


def message(business: str, text: str = "salut", user: str = "u1") -> Event:
    return new_event("MessageReceived", business_id=business, user_id=user, channel="sms", payload={"content": text})


def conflicts() -> float:
    return APPEND_CONFLICTS.labels("MessageReceived")._value.get()  # noqa: SLF001


async def test_appends_are_gapless_at_head_plus_one_and_read_back(stores: Stores, biz: str) -> None:
    log = stores.log
    first = [(await log.append(message(biz, str(i)))).event for i in range(5)]
    stream = f"{biz}#u1"
    assert [e.seq for e in first] == [1, 2, 3, 4, 5] and await log.head(stream) == 5
    assert [e.payload.content for e in await log.read(stream, after_seq=1, limit=2)] == ["1", "2"]
    assert await log.read(stream, after_seq=5) == [] and await log.head(f"{biz}#nobody") == 0
    items = await log.read_items(stream, after_seq=4)
    assert [i["seq"] for i in items] == [5] and items[0]["ingestBucket"] == items[0]["ingestedAt"][:13]
    assert (await log.get(stream, 3)).eventId == first[2].eventId and await log.get(stream, 6) is None  # type: ignore[union-attr]
    assert (await log.by_id(first[1].eventId)).seq == 2 and await log.by_id("nope") is None  # type: ignore[union-attr]


async def test_an_external_id_appends_once_and_finds_the_first_event(stores: Stores, biz: str) -> None:
    log = stores.log
    first = await log.append(message(biz, "a"), external_id="wamid.1", aliases=("sent:1",))
    again = await log.append(message(biz, "b"), external_id="wamid.1")
    assert not first.duplicate and again.duplicate and again.event.eventId == first.event.eventId
    assert await log.head(f"{biz}#u1") == 1
    assert (await log.find(biz, "sent:1")).eventId == first.event.eventId  # type: ignore[union-attr]
    assert await log.has(biz, "wamid.1") and not await log.has(biz, "wamid.2") and await log.find(biz, "x") is None


async def test_a_stale_or_guessed_head_loses_one_write_and_leaves_no_gap(stores: Stores, biz: str) -> None:
    log = stores.log
    for text in "abc":
        await log.append(message(biz, text))
    before = conflicts()
    assert (await log.append(message(biz, "d"), head=1)).event.seq == 4
    assert (await log.append(message(biz, "e"), head=9, guessed=True)).event.seq == 5
    assert conflicts() - before == 2
    assert [e.seq for e in await log.read(f"{biz}#u1")] == [1, 2, 3, 4, 5]


async def test_forgotten_at_reads_the_tombstone(stores: Stores, biz: str) -> None:
    assert await stores.log.forgotten_at(biz, "u1") is None
    await stores.forget(biz, "u1", "2026-11-24T08:00:00.000Z")
    assert (await stores.log.forgotten_at(biz, "u1")).isoformat() == "2026-11-24T08:00:00+00:00"  # type: ignore[union-attr]


async def test_a_claimed_side_item_refuses_the_second_append_whole(stores: Stores, biz: str) -> None:
    log = stores.log
    booked = await log.append_with(message(biz, "10:00"), [Claim("slot:10", {"by": "u1"})], external_id="m1")
    assert booked.event.seq == 1 and await log.side(biz, "slot:10") == {"by": "u1"}
    with pytest.raises(SideRefused) as refused:
        await log.append_with(message(biz, "10:00 too", user="u2"), [Claim("slot:11"), Claim("slot:10")], external_id="m2")
    assert refused.value.names == ("slot:10",)
    assert await log.head(f"{biz}#u2") == 0 and not await log.has(biz, "m2") and await log.side(biz, "slot:11") is None
    again = await log.append_with(message(biz, "10:00"), [Claim("slot:10")], external_id="m1")
    assert again.duplicate and again.event.eventId == booked.event.eventId, "a duplicate, not a refusal"


async def test_an_added_total_stays_under_its_ceiling_and_a_replay_sets_it(stores: Stores, biz: str) -> None:
    log = stores.log
    for n, amount in enumerate([40, 50]):
        await log.append_with(message(biz, str(n)), [AddTo("usage:2026-11", "tokens", amount, at_most=100)], external_id=f"t{n}")
    assert await log.side(biz, "usage:2026-11") == {"tokens": 90}
    await log.append_with(message(biz, "dup"), [AddTo("usage:2026-11", "tokens", 40, at_most=100)], external_id="t1")
    assert await log.side(biz, "usage:2026-11") == {"tokens": 90}, "a duplicate adds nothing"
    with pytest.raises(SideRefused):
        await log.append_with(message(biz, "over"), [AddTo("usage:2026-11", "tokens", 11, at_most=100)])
    with pytest.raises(SideRefused):
        await log.append_with(message(biz, "too big"), [AddTo("usage:2026-12", "tokens", 101, at_most=100)])
    assert await log.head(f"{biz}#u1") == 2 and await log.side(biz, "usage:2026-12") is None
    await log.append_with(message(biz, "free"), [AddTo("usage:2026-11", "tokens", 1000)])
    await log.set_side(biz, "usage:2026-11", {"tokens": 7})
    assert await log.side(biz, "usage:2026-11") == {"tokens": 7}
    assert [e.seq for e in await log.read(f"{biz}#u1")] == [1, 2, 3]


def _state(biz: str, seq: int, version: int = 1) -> Put:
    return Put("rag_user", {"businessId": biz, "userId": "u1", "lastSeq": seq, "version": version}, version=version)


def _message(biz: str, sid: str, n: int) -> Put:
    return Put("messages", {"messageId": f"{sid}-{n}", "sessionId": sid, "businessId": biz, "userId": "u1",
                            "timestamp": f"2026-11-24T08:0{n}:00Z", "seq": n}, position="seq")


async def test_projection_puts_are_monotonic_and_a_transaction_goes_in_whole(stores: Stores, biz: str) -> None:
    states = stores.states
    await states.write([_state(biz, 3)])
    await states.write([_state(biz, 3)])  # the same again: a no-op, not a failure
    with pytest.raises(StaleWrite):
        await states.write([_state(biz, 2)])
    with pytest.raises(StaleWrite):
        await states.write([_message(biz, "s1", 1), _state(biz, 1)])
    assert await states.session_messages("s1") == [], "nothing of a refused transaction went in"
    await states.write([_state(biz, 1, version=2)])  # a newer fold's state replaces an older one's
    assert (await states.load_memory(biz, "u1"))["version"] == 2  # type: ignore[index]
    loaded = await states.load_states(PROJECTIONS, biz, "u1")
    assert loaded["conversation"]["lastSeq"] == 1 and all(loaded[p.name] is None for p in PROJECTIONS if p.table != "rag_user")


async def test_an_append_in_the_projections_transaction_fails_it_whole_as_raced(stores: Stores, biz: str) -> None:
    log, states = stores.log, stores.states
    inbound = (await log.append(message(biz))).event
    reply = new_event("ReplyGenerated", business_id=biz, user_id="u1", channel="sms",
                      payload={"content": "da", "inReplyTo": inbound.eventId, "sessionId": "s1", "model": "m"})
    taken = (await log.append(message(biz, "again"))).event  # the customer wrote again: seq 2 is taken
    with pytest.raises(AppendRaced):
        await states.write([_state(biz, 2)], log.append_items(reply.with_seq(taken.seq), f"reply:{inbound.eventId}"))
    assert await states.load_memory(biz, "u1") is None and not await log.has(biz, f"reply:{inbound.eventId}")
    await states.write([_state(biz, 3)], log.append_items(reply.with_seq(3), f"reply:{inbound.eventId}"))
    assert (await log.find(biz, f"reply:{inbound.eventId}")).seq == 3  # type: ignore[union-attr]
    assert (await states.load_memory(biz, "u1"))["lastSeq"] == 3  # type: ignore[index]
    with pytest.raises(AppendRaced):  # the key is recorded already
        await states.write([_state(biz, 4)], log.append_items(reply.with_seq(4), f"reply:{inbound.eventId}"))


async def test_messages_are_read_through_their_indexes_and_bulk_writes_stay_monotonic(stores: Stores, biz: str) -> None:
    states = stores.states
    sid = f"s-{uuid.uuid4().hex[:6]}"
    await states.write_bulk([_message(biz, sid, n) for n in (2, 1, 3)] + [_state(biz, 5)])
    await states.write_bulk([_state(biz, 4)])  # older: kept out, no error
    assert [m["seq"] for m in await states.session_messages(sid)] == [1, 2, 3]
    assert [m["seq"] for m in await states.session_messages(sid, limit=2)] == [2, 3]
    assert [m["seq"] for m in await states.customer_messages(biz, "u1")] == [1, 2, 3]
    assert await states.customer_messages(biz, "u2") == [] and (await states.load_memory(biz, "u1"))["lastSeq"] == 5  # type: ignore[index]

    class Owner:
        owns = {"messages": ("messageId", "sessionId")}

    await states.delete_stale([(Owner(), _message(biz, sid, 2))])  # type: ignore[list-item]
    assert [m["seq"] for m in await states.session_messages(sid)] == [1, 3]
    await states.write([Put("sessions", {"sessionId": sid, "businessId": biz, "userId": "u1", "lastSeq": 1})])
    assert (await states.session(sid))["userId"] == "u1" and await states.session("none") is None  # type: ignore[index]


def _members(port: type) -> list[str]:
    return [name for name in vars(port) if not name.startswith("_")]


@pytest.mark.parametrize("port, implementations", [
    (EventLog, [EventStore, MemoryEventStore]),
    (StateStore, [ProjectionStore, MemoryProjectionStore]),
    (Directory, [BusinessDirectory, MemoryDirectory]),
    (StreamHeads, [EventStore, MemoryEventStore]),
    (ConfigVersions, [ConfigHistory, MemoryConfigHistory]),
    (LiveItemsPort, [LiveItems, MemoryItems]),
    (ItemBatches, [BatchWriter, MemoryItems]),
])
def test_every_store_offers_its_port_with_the_same_parameters(port: type, implementations: list[type]) -> None:
    for implementation in implementations:
        for name in _members(port):
            wanted = list(inspect.signature(getattr(port, name)).parameters)
            assert list(inspect.signature(getattr(implementation, name)).parameters) == wanted, (implementation, name)


async def test_stream_heads_list_every_conversation_and_nothing_else(stores: Stores, biz: str) -> None:
    log = stores.log
    for user, count in (("u1", 3), ("u2", 1)):
        for n in range(count):
            await log.append(message(biz, str(n), user=user), external_id=f"{user}-{n}")
    await log.append_with(message(biz, "side", user="u2"), [Claim("slot:9")])
    await stores.forget(biz, "u3", "2026-11-24T08:00:00.000Z")
    heads = await log.stream_heads()  # type: ignore[attr-defined]
    assert {s: h for s, h in heads.items() if s.startswith(f"{biz}#")} == {f"{biz}#u1": 3, f"{biz}#u2": 2}


async def test_the_config_history_keeps_each_new_version_with_its_time(stores: Stores, biz: str) -> None:
    history, key = stores.history, info_key(biz)
    t0, t1 = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 5, tzinfo=timezone.utc)
    assert await history.at(key, t1) is None and await history.versions(key) == []
    first = await history.record(key, {"openingHours": {"mon": [["09:00", "17:00"]]}}, t0)
    assert await history.record(key, {"openingHours": {"mon": [["09:00", "17:00"]]}}, t1) == first, "the same: no new version"
    second = await history.record(key, {"openingHours": {"mon": [["08:00", "18:00"]]}, "n": 1.5}, t1)
    assert second != first
    assert [(start, version) for start, _, version in await history.versions(key)] == [
        ("2026-11-01T00:00:00.000Z", first), ("2026-11-05T00:00:00.000Z", second)]
    assert await history.at(key, t0 - timedelta(seconds=1)) is None
    assert await history.at(key, t1 - timedelta(seconds=1)) == ({"openingHours": {"mon": [["09:00", "17:00"]]}}, first)
    assert await history.at(key, t1 + timedelta(days=9)) == ({"openingHours": {"mon": [["08:00", "18:00"]]}, "n": 1.5}, second)


async def test_a_directory_records_what_it_reads_in_its_history(stores: Stores, biz: str) -> None:
    directory = await stores.directory(biz, {"businessType": "salon", "name": "Ana"})
    assert directory.version("info", biz) == ""
    info = await directory.info(biz)
    assert info is not None and info["name"] == "Ana"
    ((_, content, version),) = await directory.history.versions(info_key(biz))
    assert content == info and directory.version("info", biz) == version
    await directory.info(biz)
    assert len(await directory.history.versions(info_key(biz))) == 1, "read again: no new version"
    assert await directory.info(f"{biz}-none") is None and directory.version("info", f"{biz}-none") == ""


async def test_replays_batched_puts_land_whole_and_read_back_as_stored(stores: Stores, biz: str) -> None:
    table = stores.tables.rag_user
    items = [{"businessId": biz, "userId": f"u{n}", "lastSeq": n, "facts": {"name": "Ana", "score": 0.5}} for n in range(30)]
    stores.batches.add(table, items[:20])
    stores.batches.add(table, items[20:])
    await stores.batches.flush()
    assert [await stores.live.get(table, {"businessId": biz, "userId": f"u{n}"}) for n in range(30)] == items
    assert await stores.live.get(table, {"businessId": biz, "userId": "nobody"}) is None
