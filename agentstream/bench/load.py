"""The load of `agentstream bench pipeline` and what it reads back: conversations taking turns,
steady widget traffic over WebSockets, each message's hops from the topics, and the raw Kafka
round trip it is compared with."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import websockets
from aiokafka import AIOKafkaConsumer

from agentstream.adapters.kafka.client import producer
from agentstream.bench.common import summary


async def take_turns(s: Any, base_url: str, api_key: str, conversations: int, turns: int) -> dict[str, Any]:
    """Each conversation sends its next turn (through the gateway's REST API, with the demo
    restaurant's API key) when the previous reply is on agent.replies.v1."""
    consumer = AIOKafkaConsumer(s.topic_replies, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1.0)
    sent: dict[str, list[str]] = defaultdict(list)
    replies: dict[str, list[str]] = defaultdict(list)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=120) as http:

        async def send(user: str) -> None:
            turn = len(sent[user]) + 1
            body = {"businessId": "demo-restaurant", "userId": user, "text": f"turn {turn}: a table for two?",
                    "externalId": f"{user}-{turn}"}
            answer = await http.post("/v1/messages", json=body)
            answer.raise_for_status()
            sent[user].append(answer.json()["eventId"])

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


@dataclass
class SteadyRun:
    sent: int
    answered: dict[str, tuple[float, float]]  # inbound eventId: (ack time, reply frame time), wall clock


async def widget_socket(http: httpx.AsyncClient, base_url: str, port: int, business: str = "demo-salon") -> Any:
    """A new widget visitor of `business` and its socket to connect (`async with`)."""
    v = (await http.post(f"{base_url}/v1/widget/{business}/visitors")).json()
    return websockets.connect(f"ws://127.0.0.1:{port}/ws/{business}?userId={v['userId']}&token={v['token']}")


async def steady_ws(base_url: str, port: int, rate: float, seconds: float, sockets: int = 25,
                    drain_s: float = 180.0) -> SteadyRun:
    """`rate` messages/s, evenly spaced, over `sockets` widget connections (each sends at least
    once); latency = ack → reply frame. Socket i sends at t0 + i/rate + n·sockets/rate, so the
    sockets take turns instead of all sending at once (which would be bursts of `sockets`
    messages, not a steady rate). Then each socket waits until every message it sent is answered
    (`drain_s` at most), so the work of a phase that fell behind is inside the phase."""
    answered: dict[str, tuple[float, float]] = {}
    every = sockets / rate
    per_socket = max(1, int(seconds / every))
    connected = asyncio.Barrier(sockets)
    go: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def client(index: int) -> None:
        async with httpx.AsyncClient() as http:
            ws_connect = await widget_socket(http, base_url, port)
        async with ws_connect as ws:
            acked: dict[str, float] = {}
            mine: set[str] = set()

            async def reader() -> None:
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "ack":
                        acked[frame["eventId"]] = time.time()
                    elif frame["type"] == "reply" and frame["inReplyTo"] in acked:
                        answered[frame["inReplyTo"]] = (acked[frame["inReplyTo"]], time.time())
                        mine.add(frame["inReplyTo"])

            task = asyncio.create_task(reader())
            if await connected.wait() == 0:  # every socket is open: one start time for all
                go.set_result(time.perf_counter())
            t0 = await go
            for n in range(per_socket):
                await asyncio.sleep(max(0.0, t0 + index / rate + n * every - time.perf_counter()))
                await ws.send(json.dumps({"type": "message", "text": f"Are you open? {n}", "clientMessageId": str(uuid.uuid4())}))
            deadline = time.monotonic() + drain_s
            while len(mine) < per_socket and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            task.cancel()

    await asyncio.gather(*(client(i) for i in range(sockets)))
    return SteadyRun(sockets * per_socket, answered)


async def topic_times(s: Any) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
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


def hops(answered: dict[str, tuple[float, float]], inbound: dict[str, float],
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


async def kafka_round_trip(s: Any, rate: float, count: int) -> list[float]:
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
