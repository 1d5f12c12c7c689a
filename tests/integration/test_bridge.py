"""The bridge on the real local server and broker: everything arrives, in seq order per stream."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from agentstream.bootstrap import setup
from agentstream.adapters.dynamo.client import clients
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.kafka.client import producer
from agentstream.adapters.dynamo.tables import stream_arn
from agentstream.events import new_event
from agentstream.settings import Settings
from agentstream.streams.bridge import Bridge, BridgeConfig
from agentstream.wiring import lease_table
from tests.integration.kafka_helpers import read_topic


def message(user: str, n: int) -> object:
    return new_event("MessageReceived", business_id="b", user_id=user, channel="sms", payload={"content": f"m{n}"})


async def test_events_reach_kafka_in_seq_order_per_stream(settings: Settings) -> None:
    await setup(settings, partitions=3)
    users, per_user = 40, 10
    async with clients(settings) as (ddb, streams):
        store = EventStore(ddb, settings.tables.events)
        for n in range(per_user):
            await asyncio.gather(*(store.append(message(f"u{u}", n), external_id=f"sms:{u}-{n}") for u in range(users)))
        kafka = producer(settings)
        await kafka.start()
        stop = asyncio.Event()
        config = BridgeConfig(await stream_arn(ddb, settings.tables.events), settings.topic_events, idle_poll_s=0.05)
        bridge = Bridge(streams, kafka, lease_table(ddb, settings.tables.leases, "test-bridge"), config)
        task = asyncio.create_task(bridge.run(stop))
        records = await read_topic(settings.kafka_bootstrap_servers, settings.topic_events, users * per_user)
        stop.set()
        await task
        await kafka.stop()
        leases = await lease_table(ddb, settings.tables.leases, "x").all()
    assert len(records) == users * per_user, "idempotency records must not be published"
    by_stream: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        assert r["key"] == r["value"]["streamId"]
        assert r["headers"] == {"seq": str(r["value"]["seq"]), "type": r["value"]["type"]}, "a consumer can skip it unparsed"
        by_stream[r["key"]].append(r["value"]["seq"])
        partitions[r["key"]].add(r["partition"])
    assert all(seqs == list(range(1, per_user + 1)) for seqs in by_stream.values())
    assert all(len(p) == 1 for p in partitions.values())
    (lease,) = leases.values()
    assert lease.checkpoint and lease.owner is None, "a stopping bridge checkpoints and hands its lease back"
