"""The event store's own logic on moto's DynamoDB (fast tier; invariants 1 and 2).

Append at head + 1 and retry on a lost race, external-id idempotency returning the first event,
aliases, reads after a seq. moto serves every call the store makes (Query, GetItem, conditional
PutItem, TransactWriteItems with conditions and CancellationReasons), but its conditional writes
are atomic only because the fixture serves one request at a time (see conftest.py). The same
invariants against a real server (ministack), with 20 concurrent appenders, are in
tests/integration/test_event_store.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.events import Event, new_event
from agentstream.metrics import APPEND_CONFLICTS
from agentstream.settings import Settings


def message(business: str, user: str = "u1", text: str = "salut") -> Event:
    return new_event("MessageReceived", business_id=business, user_id=user, channel="sms", payload={"content": text})


def stored(event: Event | None) -> dict[str, Any] | None:
    """The event as the table holds it (occurredAt to the millisecond)."""
    return event.to_json_dict() if event is not None else None


@pytest.fixture
def store(moto_ddb: Any, moto_settings: Settings) -> EventStore:
    return EventStore(moto_ddb, moto_settings.tables.events)


async def test_appends_at_head_plus_one(store: EventStore, biz: str) -> None:
    first = [(await store.append(message(biz, text=str(i)))).event for i in range(3)]
    other = await store.append(message(biz, user="u2"))
    assert [e.seq for e in first] == [1, 2, 3]
    assert other.event.seq == 1 and not other.duplicate
    assert stored(await store.get(f"{biz}#u1", 2)) == stored(first[1])


async def test_read_after_seq_limit_and_head(store: EventStore, biz: str) -> None:
    for i in range(7):
        await store.append(message(biz, text=str(i)))
    assert await store.head(f"{biz}#u1") == 7
    assert [e.seq for e in await store.read(f"{biz}#u1", after_seq=4)] == [5, 6, 7]
    assert [e.payload.content for e in await store.read(f"{biz}#u1", after_seq=1, limit=2)] == ["1", "2"]
    assert await store.read(f"{biz}#u1", after_seq=7) == []
    assert await store.head(f"{biz}#nobody") == 0
    assert await store.get(f"{biz}#u1", 8) is None


async def test_a_stale_head_retries_at_the_next_seq(moto_ddb: Any, moto_settings: Settings, store: EventStore,
                                                    biz: str) -> None:
    await store.append(message(biz, text="a"))
    cached = EventStore(moto_ddb, moto_settings.tables.events, head_cache=10)
    assert (await cached.append(message(biz, text="b"))).event.seq == 2
    await store.append(message(biz, text="c"))  # the cached head (2) is now stale
    assert (await cached.append(message(biz, text="d"))).event.seq == 4
    assert (await store.append(message(biz, text="e"), head=1)).event.seq == 5  # the caller's head was stale too
    assert [e.payload.content for e in await store.read(f"{biz}#u1")] == ["a", "b", "c", "d", "e"]


async def test_concurrent_appenders_get_gapless_seqs(moto_ddb: Any, moto_settings: Settings, store: EventStore,
                                                     biz: str) -> None:
    stores = [EventStore(moto_ddb, moto_settings.tables.events) for _ in range(6)]

    async def appender(s: EventStore, n: int) -> list[int]:
        return [(await s.append(message(biz, text=f"m{n}-{i}"))).event.seq for i in range(3)]

    seqs = await asyncio.gather(*(appender(s, n) for n, s in enumerate(stores)))
    events = await store.read(f"{biz}#u1")
    assert sorted(s for batch in seqs for s in batch) == list(range(1, 19))
    assert [e.seq for e in events] == list(range(1, 19))
    assert len({e.payload.content for e in events}) == 18


def conflicts_so_far() -> float:
    return sum(s.value for m in APPEND_CONFLICTS.collect() for s in m.samples if s.name.endswith("_total"))


async def test_appends_of_one_process_take_turns_and_never_race(store: EventStore, biz: str) -> None:
    """A gateway appends a customer's message while it records a reply's delivery (its hint, the
    reply's seq, is passed by the message): no lost race, the record goes after the message."""
    reply = (await store.append(message(biz, text="reply"))).event
    before = conflicts_so_far()
    appended = await asyncio.gather(*(store.append(message(biz, text=f"m{i}")) for i in range(4)),
                                    store.append(message(biz, text="delivered"), head=reply.seq))
    assert sorted(r.event.seq for r in appended) == list(range(2, 7))
    assert conflicts_so_far() == before, "appends of one process never lose a race to each other"
    assert store._turns == {}, "nothing kept once no append waits"  # noqa: SLF001


async def test_an_external_id_appends_once_and_returns_the_first_event(store: EventStore, biz: str) -> None:
    results = [await store.append(message(biz, text=f"try {i}"), external_id="sms:SM1") for i in range(3)]
    assert [r.duplicate for r in results] == [False, True, True]
    assert [stored(r.event) for r in results[1:]] == [stored(results[0].event)] * 2
    assert results[0].event.payload.content == "try 0"
    assert [e.seq for e in await store.read(f"{biz}#u1")] == [1]
    assert stored(await store.find(biz, "sms:SM1")) == stored(results[0].event)
    assert await store.has(biz, "sms:SM1") and not await store.has(biz, "sms:SM2")
    assert await store.find(biz, "sms:SM2") is None


async def test_concurrent_appends_of_one_external_id(store: EventStore, biz: str) -> None:
    results = await asyncio.gather(*(store.append(message(biz, text=str(i)), external_id="sms:SM9") for i in range(5)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.event.eventId for r in results}) == 1
    assert len(await store.read(f"{biz}#u1")) == 1


async def test_external_ids_are_per_business(store: EventStore, biz: str) -> None:
    one = await store.append(message(biz), external_id="sms:SM5")
    two = await store.append(message(f"{biz}x"), external_id="sms:SM5")
    assert not one.duplicate and not two.duplicate
    assert stored(await store.find(f"{biz}x", "sms:SM5")) == stored(two.event)


async def test_aliases_find_the_event(store: EventStore, biz: str) -> None:
    first = await store.append(message(biz), external_id="reply:e1", aliases=("sms:SMout", "wa:wamid.1"))
    again = await store.append(message(biz), external_id="sms:SMout")  # a channel's id already taken by an alias
    assert again.duplicate and stored(again.event) == stored(first.event)
    assert stored(await store.find(biz, "wa:wamid.1")) == stored(first.event)
    assert [e.seq for e in await store.read(f"{biz}#u1")] == [1]
