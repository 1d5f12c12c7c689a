"""The analytics consumer on the real Kafka, and GET /v1/analytics/{businessId} with its API key."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from prometheus_client import REGISTRY

from agentstream.adapters.kafka import client as kafka
from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.http.gateway import create_app
from agentstream.adapters.http.common import UNAUTHORIZED
from agentstream.events import Event, new_event, reply_event_id
from agentstream.settings import Settings
from agentstream.streams.analytics import AnalyticsConsumer
from agentstream.wiring import analytics_consumer, gateway_deps
from tests.integration.kafka_helpers import as_records, publish

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


def conversation(business: str, user: str, texts: list[str], fallback_last: bool = False) -> list[Event]:
    """Each text a message answered 1.5 s later, then the session resolved."""
    events: list[Event] = []
    for i, text in enumerate(texts):
        at = T0 + timedelta(minutes=10 * i)
        inbound = new_event("MessageReceived", business_id=business, user_id=user, channel="websocket",
                            occurred_at=at, payload={"content": text}).with_seq(2 * i + 1)
        answer = new_event("ReplyGenerated", business_id=business, user_id=user, channel="websocket",
                           occurred_at=at + timedelta(milliseconds=1500), event_id=reply_event_id(inbound.eventId),
                           payload={"content": "Sigur!", "inReplyTo": inbound.eventId, "sessionId": f"s-{user}",
                                    "model": "offline", "fallback": fallback_last and i == len(texts) - 1})
        events += [inbound, answer.with_seq(2 * i + 2)]
    events.append(new_event("SessionResolved", business_id=business, user_id=user, channel="system",
                            occurred_at=T0 + timedelta(hours=1), payload={"sessionId": f"s-{user}"}).with_seq(2 * len(texts) + 1))
    return events


def records_read(outcome: str) -> float:
    return REGISTRY.get_sample_value("agentstream_analytics_records_total", {"outcome": outcome}) or 0.0


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@asynccontextmanager
async def consuming(analytics: AnalyticsConsumer) -> AsyncIterator[AnalyticsConsumer]:
    stop = asyncio.Event()
    task = asyncio.create_task(analytics.run(stop))
    try:
        yield analytics
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


SALON = conversation("demo-salon", "ana", ["Vreau o programare la tuns", "Cât costă tunsul?"], fallback_last=True) \
    + conversation("demo-salon", "ion", ["programare vineri"])


async def test_consumer_counts_each_event_once_and_skips_bad_records(settings: Settings) -> None:
    await kafka.ensure_topics(settings, partitions=3)
    before = {o: records_read(o) for o in ("counted", "duplicate", "skipped")}
    no_payload = {k: v for k, v in SALON[0].to_json_dict().items() if k != "payload"} | {"eventId": "broken"}
    bad = [("demo-salon#x", b"not json"), ("demo-salon#x", json.dumps(no_payload).encode()),
           ("demo-salon#x", json.dumps({"eventId": "no type"}).encode())]
    await publish(settings, as_records(SALON) + bad + as_records(SALON[:3]))

    async with consuming(analytics_consumer(settings)) as analytics:
        read = lambda o: records_read(o) - before[o]  # noqa: E731
        await until(lambda: (read("counted"), read("duplicate"), read("skipped")) == (len(SALON), 3, 3))
        snap = analytics.snapshot("demo-salon")

    assert snap["messages"] == 3 and snap["events"] == len(SALON)
    assert snap["messagesPerHour"] == [{"hour": "2026-11-24T08:00:00Z", "messages": 3}]
    assert snap["replyLatencyMs"] == {"p50": 1500, "p95": 1500, "samples": 3}
    assert snap["sessions"] == {"opened": 2, "abandoned": 0, "resolved": 2, "closed": 0}
    assert snap["topTopics"][0] == {"topic": "programare", "count": 2}
    assert (snap["replies"], snap["fallbackReplies"], snap["fallbackRate"]) == (3, 1, 0.3333)
    assert analytics.businesses() == ["demo-salon"]

    async with consuming(analytics_consumer(settings)) as restarted:  # rebuilt from the log, not doubled
        await until(lambda: restarted.snapshot("demo-salon")["events"] == len(SALON))
        await asyncio.sleep(1.0)
        assert restarted.snapshot("demo-salon") == snap


async def test_an_event_from_a_newer_build_stops_the_consumer_and_is_not_counted(settings: Settings) -> None:
    await kafka.ensure_topics(settings, partitions=1)  # one partition: the newer event comes after SALON
    newer = SALON[0].to_json_dict() | {"schemaVersion": 9, "eventId": "from-the-future", "seq": 99}
    await publish(settings, as_records(SALON) + [("demo-salon#ana", json.dumps(newer).encode())])
    analytics, stop = analytics_consumer(settings), asyncio.Event()
    await asyncio.wait_for(analytics.run(stop), timeout=60)  # returns by itself: it stopped consuming
    assert analytics.upgrade_needed is not None and "schemaVersion 9" in analytics.upgrade_needed
    assert analytics.snapshot("demo-salon")["events"] == len(SALON) and not analytics.running


async def test_a_restarted_run_resumes_where_it_left_off(settings: Settings) -> None:
    await kafka.ensure_topics(settings, partitions=3)
    await publish(settings, as_records(SALON))
    analytics = analytics_consumer(settings)
    async with consuming(analytics):
        await until(lambda: analytics.snapshot("demo-salon")["events"] == len(SALON))
    before = sum(records_read(o) for o in ("counted", "duplicate", "skipped"))
    extra = conversation("demo-salon", "maria", ["orar sambata"])
    await publish(settings, as_records(extra))
    async with consuming(analytics):
        await until(lambda: analytics.snapshot("demo-salon")["events"] == len(SALON) + len(extra))
        await asyncio.sleep(1.0)
    assert sum(records_read(o) for o in ("counted", "duplicate", "skipped")) - before == len(extra)


async def test_analytics_route_needs_the_business_api_key(settings: Settings) -> None:
    await setup(settings, partitions=3)
    await populate(settings)
    keys = await demo_credentials(settings, ["demo-salon", "demo-restaurant"])
    await publish(settings, as_records(SALON + conversation("demo-restaurant", "bob", ["vegan menu"])))

    async with AsyncExitStack() as stack:
        d = await gateway_deps(stack, settings)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(d)), base_url="http://gateway"))
        salon = {"Authorization": f"Bearer {keys['demo-salon']}"}
        resp = await client.get("/v1/analytics/demo-salon", headers=salon)
        assert resp.status_code == 503 and resp.json() == {"error": "analytics not running"}

        d.analytics = analytics_consumer(settings)
        async with consuming(d.analytics):
            await until(lambda: d.analytics.snapshot("demo-restaurant")["events"] == 3
                        and d.analytics.snapshot("demo-salon")["events"] == len(SALON))
            resp = await client.get("/v1/analytics/demo-salon", headers=salon)
            assert resp.status_code == 200
            assert resp.json()["businessId"] == "demo-salon" and resp.json()["messages"] == 3
            assert resp.json()["sessions"]["resolved"] == 2
            own = await client.get("/v1/analytics/demo-restaurant", headers={"Authorization": f"Bearer {keys['demo-restaurant']}"})
            assert own.status_code == 200 and own.json()["messages"] == 1
            assert own.json()["topTopics"] == [{"topic": "menu", "count": 1}, {"topic": "vegan", "count": 1}]

            other = {"Authorization": f"Bearer {keys['demo-restaurant']}"}
            refused = [await client.get("/v1/analytics/demo-salon"),
                       await client.get("/v1/analytics/demo-salon", headers={"Authorization": "Bearer demo-salon.wrong"}),
                       await client.get("/v1/analytics/demo-salon", headers=other),
                       await client.get("/v1/analytics/no-such-business", headers=salon)]
            assert [(r.status_code, r.json()) for r in refused] == [(401, {"error": UNAUTHORIZED})] * 4


async def end_offsets(settings: Settings) -> dict[Any, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic_events, p) for p in range(3)]
        return {tp: n for tp, n in (await consumer.end_offsets(parts)).items() if n}
    finally:
        await consumer.stop()


async def test_a_new_process_resumes_from_the_saved_snapshot_and_its_offsets(settings: Settings,
                                                                             monkeypatch: Any) -> None:
    """Analytics state is saved with the offsets it covers; a new process (another group) reads
    only what came after them, with the same figures as a full re-read; a snapshot of another
    fold version is not used."""
    from agentstream.streams import analytics as module

    await setup(settings, partitions=3)
    await publish(settings, as_records(SALON))
    read = lambda: sum(records_read(o) for o in ("counted", "duplicate", "skipped"))  # noqa: E731
    async with dynamodb_client(settings) as ddb:
        first = analytics_consumer(settings, ddb)
        async with consuming(first):
            await until(lambda: first.snapshot("demo-salon")["events"] == len(SALON))
        extra = conversation("demo-salon", "maria", ["orar sambata", "mersi"])
        await publish(settings, as_records(extra))
        ends = await end_offsets(settings)

        before = read()
        resumed = analytics_consumer(settings, ddb)
        assert resumed.group_id != first.group_id
        async with consuming(resumed):
            await until(lambda: all(resumed._positions.get(tp) == n for tp, n in ends.items()))
        assert read() - before == len(extra), "only the events after the snapshot were read"

        from_zero = analytics_consumer(settings)
        async with consuming(from_zero):
            await until(lambda: all(from_zero._positions.get(tp) == n for tp, n in ends.items()))
        assert resumed.snapshot("demo-salon") == from_zero.snapshot("demo-salon")
        assert resumed.snapshot("demo-salon")["events"] == len(SALON) + len(extra)

        monkeypatch.setattr(module, "FOLD_VERSION", "another-fold")
        before = read()
        refolded = analytics_consumer(settings, ddb)
        async with consuming(refolded):
            await until(lambda: all(refolded._positions.get(tp) == n for tp, n in ends.items()))
        assert read() - before == len(SALON) + len(extra), "a snapshot of another fold version is read from 0"
        assert refolded.snapshot("demo-salon") == from_zero.snapshot("demo-salon")
