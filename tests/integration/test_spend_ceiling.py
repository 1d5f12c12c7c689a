"""The spend ceiling on the real local DynamoDB, against the fake model server (which reports
usage): a burst of messages at a business with a small budget, answered by two workers' worth
of processors with many turns in flight. The month's spend passes the budget by at most the
turns in flight times the dearest turn, the usage item is exactly what the log's replies cost,
every message after the budget ran out is handed to a person (the first of each conversation
told so), none is lost; a replay sets the same total; a raised budget gives the conversations
back to the AI through the owner service. BURST_MESSAGES sets the size (tests/sizes.py: 100 in
`make test`, 1 000 under soak)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.client import dynamodb_client, to_item
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.adapters.dynamo.usage import UsageStore
from agentstream.adapters.http.owner_service import OwnerService
from agentstream.adapters.llm import OpenAIResponder
from agentstream.bench.model_server import ModelServer
from agentstream.events import Event, new_event
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.replay import Scope
from agentstream.streams.spend import BUDGET_MODEL, BUILT_IN, SpendMeter, cost_of, month_of
from agentstream.streams.spend_release import BudgetReleaser
from agentstream.wiring import new_replayer
from tests.sizes import size

BUSINESS = "budget-shop"
PER_CUSTOMER = 5
IN_FLIGHT = 8  # turns in flight per worker
WORKERS = 2
INFO = {"businessId": BUSINESS, "businessType": "salon", "name": "Budget Shop", "timezone": "Europe/Bucharest",
        "settings": {"monthlyBudgetUsd": 0.002, "sessionIdleMinutes": 600}}


@dataclass
class Shop:
    ddb: Any
    settings: Settings
    store: EventStore
    usage: UsageStore
    model: ModelServer
    told: list[dict[str, Any]]
    responders: list[OpenAIResponder]

    def directory(self) -> BusinessDirectory:
        return BusinessDirectory(self.ddb, self.settings.tables, ttl_s=0.0)

    def worker(self) -> ConversationProcessor:
        async def publish(event: Event, first: bool = False) -> None:
            pass

        async def warn(business: str, payload: dict[str, Any]) -> None:
            self.told.append(payload)

        responder = OpenAIResponder(self.settings.model_copy(update={"openai_api_key": "sk-local",
                                                                      "openai_base_url": self.model.base_url}))
        self.responders.append(responder)
        meter = SpendMeter(UsageStore(self.ddb, self.settings.tables.usage, self.settings.tables.events), BUILT_IN, warn)
        return ConversationProcessor(self.store, ProjectionStore(self.ddb, self.settings.tables), self.directory(), responder,
                                     publish, spend=meter)

    async def set_budget(self, usd: float) -> None:
        info = INFO | {"settings": INFO["settings"] | {"monthlyBudgetUsd": usd}}
        await self.ddb.put_item(TableName=self.settings.tables.business_info, Item=to_item(info))


@pytest.fixture
async def shop(settings: Settings) -> AsyncIterator[Shop]:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables)
        await ddb.put_item(TableName=settings.tables.business_info, Item=to_item(INFO))
        with ModelServer() as model:
            shop = Shop(ddb, settings, EventStore(ddb, settings.tables.events),
                        UsageStore(ddb, settings.tables.usage, settings.tables.events), model, [], [])
            yield shop
            for responder in shop.responders:
                await responder.close()


async def drain(worker: ConversationProcessor, store: EventStore, stream: str) -> None:
    """Every logged event of the stream to the worker, in order, until none is new (as the bridge)."""
    seen = 0
    while events := await store.read(stream, after_seq=seen):
        for event in events:
            await worker.handle(event)
        seen = events[-1].seq


async def burst(shop: Shop, customers: list[str]) -> None:
    """Each customer's messages in rounds: every customer writes, then the workers answer, with
    IN_FLIGHT turns each at a time."""
    workers = [shop.worker() for _ in range(WORKERS)]
    slots = [asyncio.Semaphore(IN_FLIGHT) for _ in range(WORKERS)]

    async def one(i: int, customer: str) -> None:
        w = i % WORKERS  # each conversation is one worker's (its partition)
        async with slots[w]:
            await drain(workers[w], shop.store, f"{BUSINESS}#{customer}")

    for n in range(PER_CUSTOMER):
        await asyncio.gather(*(shop.store.append(new_event(
            "MessageReceived", business_id=BUSINESS, user_id=c, channel="websocket",
            payload={"content": f"Aveți loc mâine la {10 + n}? ({c})"})) for c in customers))
        await asyncio.gather(*(one(i, c) for i, c in enumerate(customers)))


def check_conversation(events: list[Event]) -> tuple[int, int, int]:
    """(AI replies, budget notices, inbounds handed off): every inbound has one reply unless a
    handoff comes before it; a budget notice is followed by the system's handoff; no AI reply
    after the first. (Messages logged before the first handoff each get the notice.)"""
    inbounds = [e for e in events if e.type == "MessageReceived"]
    replies = {e.payload.inReplyTo: e for e in events if e.type == "ReplyGenerated"}
    handoffs = [e for e in events if e.type == "HandoffRequested"]
    assert len(replies) == len([e for e in events if e.type == "ReplyGenerated"]), "two replies to one inbound"
    assert all((h.payload.by, h.payload.reason) == ("system", "budget") for h in handoffs)
    cut = handoffs[0].seq if handoffs else None
    ai = notices = after = 0
    for inbound in inbounds:
        reply = replies.get(inbound.eventId)
        if cut is not None and inbound.seq > cut:
            assert reply is None, "an AI reply after the handoff"
            after += 1
            continue
        assert reply is not None, f"inbound seq {inbound.seq} lost: no reply and no handoff before it"
        if reply.payload.model == BUDGET_MODEL:
            assert any(h.seq > reply.seq for h in handoffs), "a budget notice without the system's handoff after it"
            notices += 1
        else:
            assert cut is None or reply.seq < cut
            ai += 1
    return ai, notices, after


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_a_burst_at_a_small_budget_overshoots_by_the_turns_in_flight_at_most_and_hands_the_rest_off(shop: Shop) -> None:
    total = int(os.environ.get("BURST_MESSAGES") or size(100, 1000))
    customers = [f"c{n:04d}" for n in range(max(1, total // PER_CUSTOMER))]
    await burst(shop, customers)

    logs = {c: await shop.store.read(f"{BUSINESS}#{c}") for c in customers}
    counts = [check_conversation(events) for events in logs.values()]
    ai, notices, after = (sum(c[i] for c in counts) for i in range(3))
    assert ai + notices + after == len(customers) * PER_CUSTOMER, "every message is answered or handed off"
    assert ai == len(shop.model.behaviour.requests), "one model call per AI reply, none past the budget's check"
    assert notices and after, "the budget ran out during the burst"

    month = month_of(datetime.now(timezone.utc), "Europe/Bucharest")
    costs = [cost_of(e, INFO) for events in logs.values() for e in events if e.type == "ReplyGenerated"]
    spent, budget = await shop.usage.spent(BUSINESS, month), 2_000
    assert spent == sum(costs), "the month's total is exactly what the logged replies cost"
    assert budget <= spent <= budget + WORKERS * IN_FLIGHT * max(costs)
    print(f"{len(customers) * PER_CUSTOMER} messages: {ai} AI replies, {notices} notices, {after} handed off; "
          f"spent {spent} micro-USD of {budget} (dearest turn {max(costs)})")
    assert [t["type"] for t in shop.told].count("BudgetSpent") == 1

    await shop.usage.set_spent(BUSINESS, month, 1)
    await new_replayer(shop.ddb, shop.settings).run(Scope(BUSINESS))
    assert await shop.usage.spent(BUSINESS, month) == spent, "a replay sets the total from the log"

    await shop.set_budget(1.0)  # raised: the conversations go back to the AI
    owner = OwnerService(shop.store, ProjectionStore(shop.ddb, shop.settings.tables), shop.directory())
    meter = SpendMeter(shop.usage)
    releaser = BudgetReleaser(shop.usage, meter, owner, shop.directory().info)
    handed = [c for c, events in logs.items() if any(e.type == "HandoffRequested" for e in events)]
    assert await releaser.round() == len(handed)
    assert await releaser.round() == 0, "released once"
    worker = shop.worker()
    for c in handed[:3]:
        await drain(worker, shop.store, f"{BUSINESS}#{c}")
        released = (await shop.store.read(f"{BUSINESS}#{c}"))[-1]
        assert (released.type, released.payload.by) == ("HandoffReleased", "system")
        await shop.store.append(new_event("MessageReceived", business_id=BUSINESS, user_id=c, channel="websocket",
                                          payload={"content": "Mai sunteți acolo?"}))
        await drain(worker, shop.store, f"{BUSINESS}#{c}")
        last = (await shop.store.read(f"{BUSINESS}#{c}"))[-1]
        assert last.type == "ReplyGenerated" and last.payload.model != BUDGET_MODEL, "the AI answers again"
