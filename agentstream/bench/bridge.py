"""`agentstream bench bridge`: records/s through the bridge against a bare GetRecords loop on
the same stream in the same run, and the lag p50/p99 at a steady 500 events/s."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from agentstream import loops
from agentstream.adapters.dynamo.client import clients, put_log_items, to_item
from agentstream.adapters.kafka.client import ensure_topics, producer
from agentstream.adapters.dynamo.tables import ensure_tables, stream_arn
from agentstream.bench.common import isolated_env, report, services, settings_for, summary
from agentstream.events import new_event
from agentstream.settings import Settings
from agentstream.streams.bridge import Bridge, BridgeConfig
from agentstream.wiring import lease_table


def _item(stream_no: int, seq: int, **extra: Any) -> dict[str, Any]:
    event = new_event("MessageReceived", business_id="bench", user_id=f"u{stream_no}", channel="sms",
                      payload={"content": f"message {seq} " + "x" * 120})
    return event.with_seq(seq).to_json_dict() | extra


async def _load(ddb: Any, table: str, events: int, streams: int) -> float:
    """Write events with BatchWriteItem (setup only); returns items/s."""
    items = [_item(i % streams, i // streams + 1) for i in range(events)]
    start = time.perf_counter()
    await put_log_items(ddb, table, items)
    return events / (time.perf_counter() - start)


async def _bare_loop(streams_api: Any, arn: str, expected: int) -> float:
    """The raw rate: GetRecords from TRIM_HORIZON on every shard until all records are read."""
    shards = (await streams_api.describe_stream(StreamArn=arn))["StreamDescription"]["Shards"]
    start = time.perf_counter()
    seen = 0
    for shard in shards:
        it = (await streams_api.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
        while it and seen < expected:
            resp = await streams_api.get_records(ShardIterator=it, Limit=1000)
            seen += len(resp["Records"])
            it = resp.get("NextShardIterator") if resp["Records"] else None
    return seen / (time.perf_counter() - start)


async def _through_bridge(s: Any, ddb: Any, streams_api: Any, arn: str, expected: int,
                          leases: str) -> tuple[float, Bridge, asyncio.Event, asyncio.Task[None], Any]:
    """The bridge from TRIM_HORIZON with a fresh lease table, until every event is in Kafka."""
    await ensure_tables(ddb, s.tables.model_copy(update={"leases": leases}), only=[leases])
    kafka = producer(s)
    await kafka.start()
    bridge = Bridge(streams_api, kafka, lease_table(ddb, leases, "bench"),
                    BridgeConfig(arn, s.topic_events, idle_poll_s=0.02))
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(bridge.run(stop))
    while bridge.stats.published < expected:
        await asyncio.sleep(0.01)
    return expected / (time.perf_counter() - start), bridge, stop, task, kafka


async def _steady_lag(s: Any, ddb: Any, rate: int, seconds: float) -> list[float]:
    """Write `rate` events/s; the lag of each is its arrival in Kafka minus its write time."""
    consumer = AIOKafkaConsumer(s.topic_events, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1.0)
    lags: list[float] = []
    total = int(rate * seconds)

    async def consume() -> None:
        while len(lags) < total:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                lags.extend((now - json.loads(r.value)["benchAt"]) * 1000 for r in records if b"benchAt" in r.value)

    async def produce() -> None:
        start = time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            asyncio.ensure_future(ddb.put_item(TableName=s.tables.events, Item=to_item(_item(10_000 + n, 1, benchAt=time.time()))))

    reader = asyncio.create_task(consume())
    await produce()
    try:
        await asyncio.wait_for(reader, timeout=seconds + 30)
    finally:
        await consumer.stop()
    return lags


async def run(events: int = 20_000, streams: int = 200, steady_rate: int = 500, steady_seconds: float = 10.0,
              rounds: int = 3) -> dict[str, Any]:
    with services() as base:
        s = settings_for(isolated_env(base))
        async with clients(s) as (ddb, streams_api):
            await ensure_tables(ddb, s.tables, only=[s.tables.events, s.tables.leases])
            await ensure_topics(s)
            load_rate = await _load(ddb, s.tables.events, events, streams)
            arn = await stream_arn(ddb, s.tables.events)
            raws, bridged_rates = [], []
            for round_no in range(rounds):  # alternate, so both see the same machine
                raws.append(await _bare_loop(streams_api, arn, events))
                rate, bridge, stop, task, kafka = await _through_bridge(s, ddb, streams_api, arn, events, f"{s.tables.leases}-{round_no}")
                bridged_rates.append(rate)
                if round_no < rounds - 1:
                    stop.set()
                    await task
                    await kafka.stop()
            raw, bridged = statistics.median(raws), statistics.median(bridged_rates)
            lags = await _steady_lag(s, ddb, steady_rate, steady_seconds)
            stop.set()
            await task
            await kafka.stop()
    lag = summary(lags)
    return {
        "events": events, "streams": streams,
        "bridge_records_per_s": round(bridged), "raw_getrecords_records_per_s": round(raw),
        "bridge_vs_raw": round(bridged / raw, 3), "target_vs_raw": 0.8,
        "raw_rounds": [round(r) for r in raws], "bridge_rounds": [round(r) for r in bridged_rates],
        "steady_rate_per_s": steady_rate, "lag_p50_ms": lag["p50"], "lag_p99_ms": lag["p99"],
        "lag_samples": len(lags), "setup_batch_write_items_per_s": round(load_rate),
    }


def main() -> None:
    report("bridge", loops.run(run(), Settings().event_loop))
