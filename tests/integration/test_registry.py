"""The projection interface on the real local DynamoDB server: a projection added to the registry
is folded by the worker (its own position, written with its items), caught up from the log when
it is added late or its version changes, rebuilt and verified by replay, and erased by forget,
with no change to any of them."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import Event, MessageReceived
from agentstream.projections.base import FoldConfig, Put
from agentstream.projections.conversation import CONVERSATION
from agentstream.streams.forget import forget
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer, forget_stores
from tests.integration.world import CountingResponder, World, drain, inbound, new_processor


class WordCount:
    """A toy projection: how many words the customer wrote (kept in a table of its own)."""

    name = "words"
    table = "facts"  # the test points this Tables field at a table of its own
    owns = {"facts": ("businessId", "userId")}

    def __init__(self, version: int = 1) -> None:
        self.version = version

    def empty(self, business_id: str, user_id: str) -> dict[str, Any]:
        return {"businessId": business_id, "userId": user_id, "lastSeq": 0, "version": self.version, "words": 0}

    def apply(self, state: dict[str, Any], event: Event, config: FoldConfig) -> tuple[dict[str, Any], list[Put]]:
        if event.seq <= state["lastSeq"]:
            return state, []
        words = len(event.payload.content.split()) if isinstance(event, MessageReceived) else 0
        return {**state, "lastSeq": event.seq, "words": state["words"] + words}, []


async def _words(world: World, user: str) -> dict[str, Any] | None:
    resp = await world.ddb.get_item(TableName=world.settings.tables.facts,
                                    Key=to_item({"businessId": "demo-salon", "userId": user}), ConsistentRead=True)
    return from_item(resp["Item"]) if "Item" in resp else None


async def test_a_registered_projection_is_folded_caught_up_replayed_and_erased(world: World) -> None:
    tables = world.settings.tables.model_copy(update={"facts": world.settings.tables.facts + "-words"})
    await ensure_tables(world.ddb, tables, only=[tables.facts])
    settings = world.settings.model_copy(update={"tables": tables})
    world = World(world.ddb, settings, world.store, world.processor, world.responder, world.published)

    await world.store.append(inbound("w1", "Bună ziua, aveți loc azi?"))
    await drain(world, "demo-salon#w1")  # the conversation only: the toy projection is not registered yet
    assert await _words(world, "w1") is None

    def processor(*registry: Any) -> Any:
        return new_processor(world.ddb, settings, CountingResponder(), [], registry=registry)

    world.processor = processor(CONVERSATION, WordCount())
    await world.store.append(inbound("w1", "Și mâine dimineață?", 1))
    await drain(world, "demo-salon#w1")
    state = await _words(world, "w1")
    assert state is not None and state["words"] == 5 + 3, "caught up from the log: the first message counts too"
    assert state["lastSeq"] == 4  # both messages and both replies

    world.processor = processor(CONVERSATION, WordCount(version=2))  # a new fold: refolded, not added to
    await world.store.append(inbound("w1", "Mulțumesc", 2))
    await drain(world, "demo-salon#w1")
    state = await _words(world, "w1")
    assert (state["version"], state["words"], state["lastSeq"]) == (2, 9, 6)

    registry = (CONVERSATION, WordCount(version=2))
    assert (await new_replayer(world.ddb, settings, registry=registry).run(Scope("demo-salon", "w1"), verify=True)).differences == []
    stale = await new_replayer(world.ddb, settings, registry=(CONVERSATION, WordCount(version=3))).run(
        Scope("demo-salon", "w1"), verify=True)
    assert stale.differences == [f"{tables.facts} {{'businessId': 'demo-salon', 'userId': 'w1'}}: written by fold version 2; "
                                 "this build folds version 3 (replay rebuilds it)"]

    report = await forget(forget_stores(world.ddb, settings), settings, "demo-salon", "w1", registry=registry)
    assert report.items["facts"] == 1 and await _words(world, "w1") is None
