"""`agentstream bench pipeline`: the whole stack (bridge, worker, gateway as processes) with a
local OpenAI-compatible model.

1. 200 conversations × 5 turns, model answering in 500 ms: ideal 2.5 s against measured,
   with reorders, losses and duplicates counted.
2. Steady 50 messages/s over WebSockets with a 0 ms model: p50/p99 from the inbound ack to the
   reply frame, beside the raw Kafka produce→consume round trip measured in the same run, and
   the p50 of each hop (from the timestamps in the events and on the topics).
3. The worker's peak RSS, and the CPU each process spent per turn in phases 1 and 2.

BENCH_PIPELINE_RATE changes phase 2's rate (default 50 messages/s).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from aiokafka import AIOKafkaConsumer

from agentstream.adapters.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.event_store import EventStore
from agentstream.adapters.kafka import producer
from agentstream.local.services import free_port
from agentstream.bench.common import CpuMeter, isolated_env, report, services, settings_for, summary
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.events import new_event
from agentstream.stack import DEMO_BUSINESSES, spawn_component, wait_http


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def _turns(s: Any, conversations: int, turns: int) -> dict[str, Any]:
    """Each conversation sends its next turn when the previous reply is on agent.replies.v1."""
    consumer = AIOKafkaConsumer(s.topic_replies, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1.0)
    sent: dict[str, list[str]] = defaultdict(list)
    replies: dict[str, list[str]] = defaultdict(list)
    async with dynamodb_client(s) as ddb:
        store = EventStore(ddb, s.tables.events)

        async def send(user: str) -> None:
            turn = len(sent[user]) + 1
            event = new_event("MessageReceived", business_id="demo-restaurant", user_id=user, channel="rest",
                              payload={"content": f"turn {turn}: a table for two?", "externalId": f"{user}-{turn}"})
            sent[user].append((await store.append(event, external_id=f"rest:{user}-{turn}")).event.eventId)

        users = [f"bench-{uuid.uuid4().hex[:6]}-{i}" for i in range(conversations)]
        start = time.perf_counter()
        await asyncio.gather(*(send(u) for u in users))
        total = conversations * turns
        received = 0
        deadline = time.monotonic() + 300
        while received < total and time.monotonic() < deadline:
            follow_ups = []
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    reply = json.loads(r.value)
                    user = reply["userId"]
                    replies[user].append(reply["payload"]["inReplyTo"])
                    received += 1
                    if len(sent[user]) < turns and len(replies[user]) == len(sent[user]):
                        follow_ups.append(send(user))
            await asyncio.gather(*follow_ups)
        elapsed = time.perf_counter() - start
    await consumer.stop()
    duplicates = sum(c - 1 for u in users for c in Counter(replies[u]).values() if c > 1)
    lost = sum(len(set(sent[u]) - set(replies[u])) for u in users)
    reorders = sum(1 for u in users if [x for i, x in enumerate(replies[u]) if x not in replies[u][:i]] != sent[u][: len(set(replies[u]))])
    return {"elapsed_s": round(elapsed, 2), "replies": received, "duplicates": duplicates, "lost": lost, "reorders": reorders}


async def _steady_ws(base_url: str, port: int, rate: int, seconds: float, sockets: int = 25) -> dict[str, tuple[float, float]]:
    """`rate` messages/s, evenly spaced, over `sockets` widget connections; latency = ack → reply
    frame. Socket i sends at t0 + i/rate + n·sockets/rate, so the sockets take turns instead of
    all sending at once (which would be bursts of `sockets` messages, not a steady rate).
    Returns {inbound eventId: (ack time, reply frame time)}, wall clock."""
    answered: dict[str, tuple[float, float]] = {}
    every = sockets / rate
    connected = asyncio.Barrier(sockets)
    go: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def client(index: int) -> None:
        async with httpx.AsyncClient() as http:
            v = (await http.post(f"{base_url}/v1/widget/demo-salon/visitors")).json()
        url = f"ws://127.0.0.1:{port}/ws/demo-salon?userId={v['userId']}&token={v['token']}"
        async with websockets.connect(url) as ws:
            acked: dict[str, float] = {}

            async def reader() -> None:
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "ack":
                        acked[frame["eventId"]] = time.time()
                    elif frame["type"] == "reply" and frame["inReplyTo"] in acked:
                        answered[frame["inReplyTo"]] = (acked[frame["inReplyTo"]], time.time())

            task = asyncio.create_task(reader())
            if await connected.wait() == 0:  # every socket is open: one start time for all
                go.set_result(time.perf_counter())
            t0 = await go
            for n in range(int(seconds / every)):
                await asyncio.sleep(max(0.0, t0 + index / rate + n * every - time.perf_counter()))
                await ws.send(json.dumps({"type": "message", "text": f"Are you open? {n}", "clientMessageId": str(uuid.uuid4())}))
            await asyncio.sleep(5.0)
            task.cancel()

    await asyncio.gather(*(client(i) for i in range(sockets)))
    return answered


async def _topic_times(s: Any) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """When each inbound reached agent.events.v1, and when each one's reply was written (its
    occurredAt) and reached agent.replies.v1; keyed by the inbound's eventId."""
    inbound: dict[str, float] = {}
    replies: dict[str, tuple[float, float]] = {}
    for topic in (s.topic_events, s.topic_replies):
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            while batches := await consumer.getmany(timeout_ms=2000):
                for record in (r for rs in batches.values() for r in rs):
                    event = json.loads(record.value)
                    if topic == s.topic_events and event["type"] == "MessageReceived":
                        inbound[event["eventId"]] = record.timestamp / 1000
                    elif topic == s.topic_replies:
                        written = datetime.fromisoformat(event["occurredAt"].replace("Z", "+00:00")).timestamp()
                        replies[event["payload"]["inReplyTo"]] = (written, record.timestamp / 1000)
        finally:
            await consumer.stop()
    return inbound, replies


def _hops(answered: dict[str, tuple[float, float]], inbound: dict[str, float],
          replies: dict[str, tuple[float, float]]) -> dict[str, float]:
    """p50 of each hop, in ms: ack → inbound on the events topic (bridge) → reply written
    (worker) → reply on the replies topic → reply frame on the socket (delivery)."""
    hops: dict[str, list[float]] = defaultdict(list)
    for event_id, (acked, framed) in answered.items():
        if event_id in inbound and event_id in replies:
            written, published = replies[event_id]
            points = [("bridge", acked, inbound[event_id]), ("worker", inbound[event_id], written),
                      ("reply_publish", written, published), ("delivery", published, framed)]
            for name, start, end in points:
                hops[name].append((end - start) * 1000)
    return {f"hop_{name}_p50_ms": summary(values)["p50"] for name, values in hops.items()}


async def _kafka_round_trip(s: Any, rate: int, count: int) -> list[float]:
    topic = f"{s.topic_events}.rtt"
    prod = producer(s)
    await prod.start()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, auto_offset_reset="earliest")
    await prod.send_and_wait(topic, b"warm-up")
    await consumer.start()
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < count:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                latencies.extend((now - float(r.value)) * 1000 for r in records if r.value != b"warm-up")

    reader = asyncio.create_task(consume())
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        await prod.send(topic, str(time.perf_counter()).encode())
    await asyncio.wait_for(reader, 60)
    await consumer.stop()
    await prod.stop()
    return latencies


def _per_unit_ms(spent: dict[str, float], units: int) -> dict[str, float]:
    """CPU seconds per process as ms per turn or message, with their total."""
    per_unit = {name: seconds * 1000 / max(units, 1) for name, seconds in spent.items()}
    return {name: round(ms, 1) for name, ms in per_unit.items()} | {"total": round(sum(per_unit.values()), 1)}


def run(conversations: int = 200, turns: int = 5, model_ms: int = 500, rate: int = 50, seconds: float = 10.0) -> dict[str, Any]:
    behaviour = ModelBehaviour(delay_s=model_ms / 1000)
    pids: dict[str, int] = {}
    with services(pids) as base, ModelServer(behaviour) as model:
        port = free_port()
        env = isolated_env(base, OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=model.base_url,
                           GATEWAY_PORT_HTTP=str(port), KAFKA_PARTITIONS="6")
        s = settings_for(env)
        asyncio.run(setup(s))
        asyncio.run(populate(s))
        asyncio.run(demo_credentials(s, DEMO_BUSINESSES))
        logs = Path(tempfile.mkdtemp(prefix="agentstream-bench-logs-"))
        procs = {name: spawn_component(name, env, logs) for name in ("bridge", "worker", "gateway")}
        meter = CpuMeter(pids | {name: proc.popen.pid for name, proc in procs.items()}, own="load_and_model")
        try:
            wait_http(port, 60)
            time.sleep(3.0)
            before = meter.read()
            turns_result = asyncio.run(_turns(s, conversations, turns))
            turns_cpu = _per_unit_ms(meter.since(before), turns_result["replies"])
            behaviour.delay_s = 0.0
            before = meter.read()
            answered = asyncio.run(_steady_ws(f"http://127.0.0.1:{port}", port, rate, seconds))
            steady_cpu = _per_unit_ms(meter.since(before), len(answered))
            hops = _hops(answered, *asyncio.run(_topic_times(s)))
            kafka_rtt = asyncio.run(_kafka_round_trip(s, rate, int(rate * seconds)))
            rss = peak_rss_mb(procs["worker"].popen.pid)
        finally:
            for proc in procs.values():
                proc.stop()
    ideal = turns * model_ms / 1000
    lat, rtt = summary([(framed - acked) * 1000 for acked, framed in answered.values()]), summary(kafka_rtt)
    return {
        "conversations": conversations, "turns": turns, "model_ms": model_ms,
        "ideal_s": ideal, "measured_s": turns_result["elapsed_s"],
        "ideal_over_measured": round(ideal / turns_result["elapsed_s"], 3), "target_ratio": 0.7,
        "replies": turns_result["replies"], "reorders": turns_result["reorders"],
        "lost": turns_result["lost"], "duplicates": turns_result["duplicates"],
        "cpu_ms_per_turn": turns_cpu,
        "steady_rate_per_s": rate, "ack_to_reply_p50_ms": lat["p50"], "ack_to_reply_p99_ms": lat["p99"],
        "latency_samples": len(answered), **hops, "cpu_ms_per_steady_message": steady_cpu,
        "raw_kafka_rtt_p50_ms": rtt["p50"], "raw_kafka_rtt_p99_ms": rtt["p99"],
        "worker_peak_rss_mb": rss, "logs": str(logs),
    }


def main() -> None:
    """BENCH_PIPELINE_RATE sets phase 2's rate (default 50 messages/s)."""
    report("pipeline", run(rate=int(os.environ.get("BENCH_PIPELINE_RATE", "50"))))
