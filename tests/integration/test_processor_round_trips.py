"""The worker's per-event DynamoDB round trips on the real local server, and that saving them
keeps every guarantee: a turn of a conversation the worker has met costs one transaction, the
reply's append with the projections' write (no query: it read the log when it met it, and
answers it alone since);
the reply coming back from the topic costs nothing; the projections still equal a replay; a
later event this build cannot read does not stop an earlier inbound's reply; appends by
alternating writers (gateway, worker, delivery) never fail a transaction on a stale head."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, ReplyGenerated, new_event
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer
from tests.integration.world import World, new_processor

pytestmark = pytest.mark.integration
CALLS = ("get_item", "query", "put_item", "transact_write_items", "batch_write_item", "batch_get_item", "update_item")


class CountingClient:
    """The DynamoDB client, counting the calls that reach the server (and failed ones)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ddb, name)
        if name not in CALLS:
            return attr

        async def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            try:
                return await attr(**kwargs)
            except Exception:
                self.failed[name] += 1
                raise

        return call


@dataclass
class CountedWorld(World):
    """The shared world, with its processor's DynamoDB calls counted."""

    counting: CountingClient


@pytest.fixture
def world(world: CountedWorld) -> CountedWorld:
    counting = CountingClient(world.ddb)
    processor = new_processor(counting, world.settings, world.responder, world.published)
    return CountedWorld(world.ddb, world.settings, world.store, processor, world.responder, world.published, counting)


def inbound(user: str, text: str) -> Event:
    return new_event("MessageReceived", business_id="demo-salon", user_id=user, channel="websocket", payload={"content": text})


async def test_a_turn_costs_one_round_trip_and_the_returning_reply_none(world: CountedWorld) -> None:
    first = (await world.store.append(inbound("t1", "Bună ziua, aveți loc azi?"))).event
    await world.processor.handle(first)  # warms the conversation and the business caches
    reply = world.published[-1]
    world.counting.calls.clear()
    await world.processor.handle(reply)  # the reply, back from the topic: already folded
    assert world.counting.calls == Counter()

    second = (await world.store.append(inbound("t1", "Și mâine la 10?"))).event
    await world.processor.handle(second)
    assert world.counting.calls == Counter(transact_write_items=1), world.counting.calls
    assert not world.counting.failed and world.responder.calls == 2
    log = await world.store.read("demo-salon#t1")
    assert [e.type for e in log] == ["MessageReceived", "ReplyGenerated"] * 2
    assert [e.payload.inReplyTo for e in log if isinstance(e, ReplyGenerated)] == [first.eventId, second.eventId]
    memory = await ProjectionStore(world.ddb, world.settings.tables).load_memory("demo-salon", "t1")
    assert memory["lastSeq"] == 4 and memory["sessionContext"]["conversationLength"] == 4
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "t1"), verify=True)).differences == []


async def test_redelivered_inbound_finds_its_reply_without_the_model(world: CountedWorld) -> None:
    event = (await world.store.append(inbound("t2", "Cât costă tunsul?"))).event
    await world.processor.handle(event)
    await world.ddb.delete_item(TableName=world.settings.tables.rag_user,
                                Key={"businessId": {"S": "demo-salon"}, "userId": {"S": "t2"}})  # lost in a crash
    fresh = new_processor(world.counting, world.settings, world.responder, world.published)
    await fresh.handle(event)
    assert world.responder.calls == 1
    assert [p.eventId for p in world.published] == [world.published[0].eventId] * 2
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "t2"), verify=True)).differences == []


async def test_a_later_event_this_build_cannot_read_does_not_block_the_reply(world: CountedWorld) -> None:
    event = (await world.store.append(inbound("t3", "Salut"))).event
    newer = new_event("MessageReceived", business_id="demo-salon", user_id="t3", channel="websocket",
                      payload={"content": "from a newer build"}).with_seq(2).to_json_dict() | {"schemaVersion": 99}
    await world.ddb.put_item(TableName=world.settings.tables.events, Item=to_item(newer))
    await world.processor.handle(event)
    replies = [e for e in await world.store.read_items("demo-salon#t3") if e["type"] == "ReplyGenerated"]
    assert [(r["seq"], r["payload"]["inReplyTo"]) for r in replies] == [(3, event.eventId)]


async def test_alternating_writers_never_fail_a_transaction_on_a_stale_head(world: CountedWorld) -> None:
    counting = world.counting
    gateway, worker = EventStore(counting, world.settings.tables.events), EventStore(counting, world.settings.tables.events)
    for turn in range(5):
        sent = (await gateway.append(inbound("t4", f"turn {turn}"))).event
        answer = new_event("ReplyGenerated", business_id="demo-salon", user_id="t4", channel="websocket",
                           payload={"content": "ok", "inReplyTo": sent.eventId, "sessionId": "", "model": "m"})
        await worker.append(answer, external_id=f"reply:{sent.eventId}", head=sent.seq)
    assert not counting.failed, counting.failed
    assert counting.calls == Counter(query=5, put_item=5, transact_write_items=5)
    assert [e.seq for e in await world.store.read("demo-salon#t4")] == list(range(1, 11))
    stale = new_event("MessageReceived", business_id="demo-salon", user_id="t4", channel="websocket", payload={"content": "x"})
    assert (await worker.append(stale, head=3)).event.seq == 11, "a stale head costs a retry, never a gap or an overwrite"
