"""Reply delivery scaled out, on the real Kafka and ministack: two gateways each deliver the widget
replies of the sockets they hold, whichever partition (and so whichever process) the reply came
through; `agentstream delivery` killed at fixed points of an SMS send, counting Twilio's requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.adapters import kafka
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.event_store import EventStore
from agentstream.adapters.ingest import InboundMessage, Ingestor
from agentstream.adapters.local_services import free_port, spawn
from agentstream.events import DeliveryFailed, ReplyDelivered, ReplyGenerated, new_event, reply_event_id
from agentstream.settings import Settings
from agentstream.stack import spawn_component, wait_http
from agentstream.streams.conversations import reply_key
from tests.conftest import isolated_env, settings_from
from tests.e2e.stack import log_events, running_stack, set_credentials
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints

ROOT = Path(__file__).resolve().parents[2]
TWILIO = {"accountSid": "AC123", "authToken": "twilio-token-1", "fromNumber": "+40700000000"}


async def until(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return found


async def answer(s: Settings, user: str, text: str, channel: str = "websocket",
                 reply_to: dict[str, str] | None = None) -> ReplyGenerated:
    """An inbound and its reply in the log, the reply on the replies topic: as gateway and worker write them."""
    async with dynamodb_client(s) as ddb:
        store = EventStore(ddb, s.tables.events)
        inbound = (await Ingestor(store).ingest(InboundMessage(
            "demo-salon", user, channel, f"in-{text}", text, reply_to=reply_to or {"socket": "widget"}))).event
        draft = new_event("ReplyGenerated", event_id=reply_event_id(inbound.eventId), business_id="demo-salon",
                          user_id=user, channel=channel, payload={
                              "content": f"answer to {text}", "inReplyTo": inbound.eventId, "sessionId": "",
                              "model": "test", "deliverTo": dict(reply_to or {"socket": "widget"})})
        reply = (await store.append(draft, external_id=reply_key(inbound.eventId))).event
    producer = kafka.producer(s)
    await producer.start()
    try:
        await producer.send_and_wait(s.topic_replies, key=reply.streamId.encode(), value=kafka.dumps(reply.to_json_dict()))
    finally:
        await producer.stop()
    assert isinstance(reply, ReplyGenerated)
    return reply


def delivered(env: dict[str, str], reply: ReplyGenerated) -> list[Any]:
    return [e for e in log_events(env, reply.streamId)
            if isinstance(e, (ReplyDelivered, DeliveryFailed)) and e.payload.replyEventId == reply.eventId]


class Customer:
    """A widget visitor with a socket open on one gateway; keeps the reply frames it got."""

    def __init__(self, port: int, visitor: dict[str, str]) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/demo-salon?userId={visitor['userId']}&token={visitor['token']}"
        self.user = visitor["userId"]
        self.replies: list[str] = []
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "reply":
                self.replies.append(frame["eventId"])

    async def close(self) -> None:
        await self.ws.close()
        if self.task:
            await asyncio.gather(self.task, return_exceptions=True)


async def test_two_gateways_each_deliver_the_replies_of_their_own_sockets(
        endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "a", components=("gateway",)) as stack:
        port_b = free_port()
        (tmp_path / "b").mkdir()
        gateway_b = spawn_component("gateway", stack.env | {"GATEWAY_PORT_HTTP": str(port_b)}, tmp_path / "b")
        try:
            wait_http(port_b, timeout=60)
            s = settings_from(stack.env, monkeypatch)
            visitors = [httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json() for _ in range(8)]
            customers = [Customer(stack.port if i % 2 else port_b, v) for i, v in enumerate(visitors)]
            for c in customers:
                await c.open()
            first = [await answer(s, c.user, f"first {i}") for i, c in enumerate(customers)]
            second = [await answer(s, c.user, f"second {i}") for i, c in enumerate(customers)]
            # the second reply of a conversation comes after the first on its partition: once each
            # socket has it, a first reply sent twice would have arrived before it
            await until(lambda: all(len(c.replies) >= 2 for c in customers))
            for c, one, two in zip(customers, first, second):
                assert c.replies == [one.eventId, two.eventId], f"{c.user} on {c.url.split('/')[2]}"
            for reply in first + second:  # one ReplyDelivered each, written by the gateway holding the socket
                found = await until(lambda reply=reply: delivered(stack.env, reply))
                assert [type(e).__name__ for e in found] == ["ReplyDelivered"]
            partitions = {kafka_partition(s, c.user) for c in customers}
            assert len(partitions) > 1, "the replies came through more than one partition"
            for c in customers:
                await c.close()
        finally:
            gateway_b.stop()


def kafka_partition(s: Settings, user: str) -> int:
    from aiokafka.partitioner import DefaultPartitioner

    return DefaultPartitioner()(f"demo-salon#{user}".encode(), list(range(s.kafka_partitions)), list(range(s.kafka_partitions)))


@pytest.fixture(scope="module")
def vendors() -> Any:
    with VendorServer() as server:
        yield server


async def committed_to_end(s: Settings) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(s.delivery_group)
    finally:
        await admin.close()
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers)
    await consumer.start()
    try:
        parts = [TopicPartition(s.topic_replies, p) for p in consumer.partitions_for_topic(s.topic_replies) or ()]
        if not parts:
            parts = [TopicPartition(s.topic_replies, p) for p in range(s.kafka_partitions)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return all((committed.get(tp).offset if committed.get(tp) else 0) == end for tp, end in ends.items())


@pytest.fixture(scope="module")
def sms_stack(endpoints: Endpoints, vendors: VendorServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Tables, topics and Twilio credentials; no process runs until a test starts one."""
    env = isolated_env(endpoints, **vendors.env())
    with running_stack(env, tmp_path_factory.mktemp("logs"), components=()) as stack:
        set_credentials(stack.env, "demo-salon", "twilio", TWILIO)
        yield stack


@pytest.mark.parametrize("point, vendor_requests", [("before_send", 1), ("after_send", 2), ("after_record", 1)])
async def test_a_delivery_process_killed_mid_send(point: str, vendor_requests: int, sms_stack: Any,
                                                  vendors: VendorServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed before the send: the next process sends it once. Killed between Twilio's answer and
    ReplyDelivered (the one window): sent twice, recorded once. Killed after the record: not sent again."""
    stack = sms_stack
    s = settings_from(stack.env, monkeypatch)
    phone = f"+4072{free_port():07d}"
    reply = await answer(s, phone, f"kill {point}", channel="sms",
                         reply_to={"via": "twilio", "from": TWILIO["fromNumber"], "to": phone})
    sent = lambda: [r for r in vendors.state.sent("/Messages.json") if r.form.get("To") == phone]  # noqa: E731

    killer = spawn("delivery-killer", [sys.executable, "-m", "tests.integration.delivery_killer", point],
                   tmp_path / "killer.log", env=stack.env, cwd=ROOT)
    assert await asyncio.to_thread(killer.popen.wait, 120) == 137, (tmp_path / "killer.log").read_text()
    assert f"killed at {point}" in (tmp_path / "killer.log").read_text()
    assert len(sent()) == (0 if point == "before_send" else 1)
    assert len(delivered(stack.env, reply)) == (1 if point == "after_record" else 0)

    restarted = spawn_component("delivery", stack.env, tmp_path)
    try:
        await until(lambda: delivered(stack.env, reply))
        committed = False
        for _ in range(600):
            if committed := await committed_to_end(s):
                break
            await asyncio.sleep(0.1)
        assert committed, "the restarted delivery committed the reply"
    finally:
        restarted.stop()
    assert len(sent()) == vendor_requests
    assert [type(e).__name__ for e in delivered(stack.env, reply)] == ["ReplyDelivered"]
    assert all(r.form["Body"] == f"answer to kill {point}" for r in sent())
