"""The event log on the real local DynamoDB server (ministack): invariants 1 and 2 where the
server's own atomicity and transaction answers matter. The store's logic (head + 1, stale heads,
reads after a seq, aliases) is tested fast on moto: tests/unit/test_event_store_moto.py."""

from __future__ import annotations

import asyncio

from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.event_store import EventStore
from agentstream.adapters.tables import ensure_tables
from agentstream.events import new_event
from agentstream.settings import Settings


def message(user: str = "u1", text: str = "salut") -> object:
    return new_event("MessageReceived", business_id="b1", user_id=user, channel="sms", payload={"content": text})


async def test_twenty_concurrent_appenders_get_gapless_seq(settings: Settings) -> None:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.events])
        stores = [EventStore(ddb, settings.tables.events) for _ in range(20)]

        async def appender(store: EventStore, n: int) -> list[int]:
            return [(await store.append(message(text=f"m{n}-{i}"))).event.seq for i in range(5)]

        seqs = await asyncio.gather(*(appender(s, n) for n, s in enumerate(stores)))
        events = await EventStore(ddb, settings.tables.events).read("b1#u1")
    assert sorted(s for batch in seqs for s in batch) == list(range(1, 101))
    assert [e.seq for e in events] == list(range(1, 101))
    assert len({e.payload.content for e in events}) == 100


async def test_external_id_appends_once(settings: Settings) -> None:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.events])
        store = EventStore(ddb, settings.tables.events)
        results = [await store.append(message(), external_id="sms:SM123") for _ in range(3)]
        concurrent = await asyncio.gather(*(store.append(message(), external_id="sms:SM999") for _ in range(5)))
        events = await store.read("b1#u1")
    assert [r.duplicate for r in results] == [False, True, True]
    assert {r.event.eventId for r in results} == {results[0].event.eventId}
    assert sum(not r.duplicate for r in concurrent) == 1
    assert len(events) == 2

