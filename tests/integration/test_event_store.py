"""The event log on the real local DynamoDB server (ministack): invariants 1 and 2 where the
server's own atomicity and transaction answers matter. The store's logic (head + 1, stale heads,
reads after a seq, aliases) is tested fast on moto: tests/unit/test_event_store_moto.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agentstream.adapters.dynamo.client import dynamodb_client, from_item, query_all, to_item
from agentstream.adapters.dynamo.lean_client import LeanDynamo, hot_dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import new_event
from agentstream.settings import Settings

CLIENTS = pytest.mark.parametrize("client", ["lean", "botocore"])


@asynccontextmanager
async def events_client(settings: Settings, client: str) -> AsyncIterator[Any]:
    """The hot path's client of either kind, on a ready events table."""
    async with dynamodb_client(settings) as admin:
        await ensure_tables(admin, settings.tables, only=[settings.tables.events])
    async with hot_dynamodb_client(settings.model_copy(update={"dynamodb_client": client})) as ddb:
        assert isinstance(ddb, LeanDynamo) == (client == "lean")
        yield ddb


def message(user: str = "u1", text: str = "salut") -> object:
    return new_event("MessageReceived", business_id="b1", user_id=user, channel="sms", payload={"content": text})


@CLIENTS
async def test_twenty_concurrent_appenders_get_gapless_seq(settings: Settings, client: str) -> None:
    async with events_client(settings, client) as ddb:
        stores = [EventStore(ddb, settings.tables.events) for _ in range(20)]

        async def appender(store: EventStore, n: int) -> list[int]:
            return [(await store.append(message(text=f"m{n}-{i}"))).event.seq for i in range(5)]

        seqs = await asyncio.gather(*(appender(s, n) for n, s in enumerate(stores)))
        events = await EventStore(ddb, settings.tables.events).read("b1#u1")
    assert sorted(s for batch in seqs for s in batch) == list(range(1, 101))
    assert [e.seq for e in events] == list(range(1, 101))
    assert len({e.payload.content for e in events}) == 100


@CLIENTS
async def test_external_id_appends_once(settings: Settings, client: str) -> None:
    async with events_client(settings, client) as ddb:
        store = EventStore(ddb, settings.tables.events)
        results = [await store.append(message(), external_id="sms:SM123") for _ in range(3)]
        concurrent = await asyncio.gather(*(store.append(message(), external_id="sms:SM999") for _ in range(5)))
        events = await store.read("b1#u1")
    assert [r.duplicate for r in results] == [False, True, True]
    assert {r.event.eventId for r in results} == {results[0].event.eventId}
    assert sum(not r.duplicate for r in concurrent) == 1
    assert len(events) == 2



async def test_the_lean_client_answers_and_fails_as_botocore_does(settings: Settings) -> None:
    """Same answers (pages followed), same error codes: the stores cannot tell the clients apart."""
    async with events_client(settings, "lean") as lean, dynamodb_client(settings) as boto:
        item = {"streamId": "b1#lean", "seq": 1, "n": 2.5, "tags": ["a", 1], "m": {"x": None, "ok": True}}
        await lean.put_item(TableName=settings.tables.events, Item=to_item(item))
        got = [await c.get_item(TableName=settings.tables.events, Key=to_item({"streamId": "b1#lean", "seq": 1}), ConsistentRead=True)
               for c in (lean, boto)]
        assert from_item(got[0]["Item"]) == from_item(got[1]["Item"]) == item
        for seq in range(2, 8):
            await lean.put_item(TableName=settings.tables.events, Item=to_item({"streamId": "b1#lean", "seq": seq}))
        query = {"TableName": settings.tables.events, "KeyConditionExpression": "streamId = :s",
                 "ExpressionAttributeValues": {":s": {"S": "b1#lean"}}, "Limit": 3}
        assert [i["seq"] for i in await query_all(lean, **query)] == list(range(1, 8))
        errors = []
        for c in (lean, boto):
            with pytest.raises(ClientError) as raised:
                await c.put_item(TableName=settings.tables.events, Item=to_item(item), ConditionExpression="attribute_not_exists(streamId)")
            errors.append(raised.value.response["Error"]["Code"])
            with pytest.raises(ClientError) as raised:
                await c.transact_write_items(TransactItems=[
                    {"Put": {"TableName": settings.tables.events, "Item": to_item({"streamId": "b1#lean", "seq": 99})}},
                    {"Put": {"TableName": settings.tables.events, "Item": to_item(item), "ConditionExpression": "attribute_not_exists(streamId)"}}])
            errors.append(raised.value.response["Error"]["Code"])
            errors.append([r.get("Code") for r in raised.value.response["CancellationReasons"]])
        assert errors[:3] == errors[3:] == ["ConditionalCheckFailedException", "TransactionCanceledException", ["None", "ConditionalCheckFailed"]]


@CLIENTS
async def test_a_guessed_head_appends_after_an_event_that_exists(settings: Settings, client: str) -> None:
    """The guess's check (a ConditionCheck in the append's transaction) on the real server: a
    right guess appends, a guess too low or too high appends at the head, and no seq is skipped."""
    async with events_client(settings, client) as ddb:
        store, user = EventStore(ddb, settings.tables.events), f"guess-{client}"
        assert (await store.append(message(user, "a"), external_id=f"g:{user}:a", head=4, guessed=True)).event.seq == 1
        assert (await store.append(message(user, "b"), external_id=f"g:{user}:b", head=1, guessed=True)).event.seq == 2
        assert (await store.append(message(user, "c"), external_id=f"g:{user}:c", head=1, guessed=True)).event.seq == 3
        assert (await store.append(message(user, "d"), head=9, guessed=True)).event.seq == 4
        again = await store.append(message(user, "b"), external_id=f"g:{user}:b", head=7, guessed=True)
        events = await store.read(f"b1#{user}")
    assert again.duplicate and again.event.seq == 2
    assert [(e.seq, e.payload.content) for e in events] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
