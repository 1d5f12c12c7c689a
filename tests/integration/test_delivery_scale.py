"""Reply delivery scaled out, on the real Kafka and ministack: two gateways each deliver the widget
replies of the sockets they hold, whichever partition (and so whichever process) the reply came
through; `agentstream delivery` killed at fixed points of an SMS send, counting Twilio's requests."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.ingest import InboundMessage, Ingestor
from agentstream.local.services import free_port, spawn
from agentstream.events import DeliveryFailed, ReplyDelivered, ReplyGenerated, new_event, reply_event_id
from agentstream.settings import Settings
from agentstream.stack import spawn_component, wait_http
from agentstream.streams.reply_policy import reply_key
from tests.conftest import isolated_env, settings_from
from tests.e2e.stack import log_events, running_stack, set_credentials
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints

ROOT = Path(__file__).resolve().parents[2]
TWILIO = {"accountSid": "AC123", "authToken": "twilio-token-1", "fromNumber": "+40700000000"}
TOPICS = ("TOPIC_EVENTS", "TOPIC_REPLIES", "TOPIC_DLQ", "TOPIC_SHADOW", "TOPIC_HANDOFFS")


async def until(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return found


class Answers:
    """Writes an inbound and its reply in the log and the reply on the replies topic, as gateway
    and worker write them (one DynamoDB client and one producer for the whole test)."""

    def __init__(self, s: Settings) -> None:
        self._s = s
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> "Answers":
        ddb = await self._stack.enter_async_context(dynamodb_client(self._s))
        self.store = EventStore(ddb, self._s.tables.events)
        self.producer = kafka.producer(self._s)
        await self.producer.start()
        self._stack.push_async_callback(self.producer.stop)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.aclose()

    async def publish(self, key: bytes, value: bytes) -> None:
        await self.producer.send_and_wait(self._s.topic_replies, key=key, value=value)

    async def __call__(self, user: str, text: str, channel: str = "websocket", reply_to: dict[str, str] | None = None,
                       business: str = "demo-salon") -> ReplyGenerated:
        reply_to = reply_to or {"socket": "widget"}
        inbound = (await Ingestor(self.store).ingest(InboundMessage(
            business, user, channel, f"in-{user}-{text}", text, reply_to=reply_to))).event
        draft = new_event("ReplyGenerated", event_id=reply_event_id(inbound.eventId), business_id=business,
                          user_id=user, channel=channel, payload={
                              "content": f"answer to {text}", "inReplyTo": inbound.eventId, "sessionId": "",
                              "model": "test", "deliverTo": dict(reply_to)})
        reply = (await self.store.append(draft, external_id=reply_key(inbound.eventId))).event
        await self.publish(reply.streamId.encode(), kafka.dumps(reply.to_json_dict()))
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


@pytest.mark.soak
async def test_two_gateways_each_deliver_the_replies_of_their_own_sockets(
        endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "a", components=("gateway",)) as stack:
        port_b = free_port()
        (tmp_path / "b").mkdir()
        gateway_b = spawn_component("gateway", stack.env | {"GATEWAY_PORT_HTTP": str(port_b)}, tmp_path / "b")
        stack_answers = AsyncExitStack()
        try:
            wait_http(port_b, timeout=60)
            s = settings_from(stack.env, monkeypatch)
            answer = await stack_answers.enter_async_context(Answers(s))
            visitors = [httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json() for _ in range(8)]
            customers = [Customer(stack.port if i % 2 else port_b, v) for i, v in enumerate(visitors)]
            for c in customers:
                await c.open()
            first = [await answer(c.user, f"first {i}") for i, c in enumerate(customers)]
            second = [await answer(c.user, f"second {i}") for i, c in enumerate(customers)]
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

            # connected nowhere: no gateway sends it; on connecting it comes from the log, recorded,
            # so the next connection does not get it again (the later reply is its first frame).
            # (A live send racing the connection may show it twice to this socket: never recorded twice.)
            away = Customer(port_b, httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json())
            missed = await answer(away.user, "while away")
            await away.open()
            await until(lambda: away.replies)
            await away.close()
            assert away.replies[0] == missed.eventId
            found = await until(lambda: delivered(stack.env, missed))
            assert [type(e).__name__ for e in found] == ["ReplyDelivered"]
            back = Customer(stack.port, {"userId": away.user, "token": away.url.rsplit("token=", 1)[1]})
            await back.open()
            later = await answer(away.user, "back again")
            await until(lambda: back.replies)
            await back.close()
            assert back.replies[0] == later.eventId
        finally:
            await stack_answers.aclose()
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
def sms_tables(endpoints: Endpoints, vendors: VendorServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Tables and Twilio credentials, shared by the module; no process runs until a test starts one."""
    env = isolated_env(endpoints, **vendors.env())
    with running_stack(env, tmp_path_factory.mktemp("logs"), components=()) as stack:
        set_credentials(stack.env, "demo-salon", "twilio", TWILIO)
        yield stack


@pytest.fixture
async def sms_stack(sms_tables: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module's tables with topics and consumer groups of this test's own: what one test leaves
    on a topic (junk, a reply from a newer build that stops delivery for good) is no other test's."""
    tag = uuid.uuid4().hex[:8]
    env = sms_tables.env | {name: f"t{tag}.{name.removeprefix('TOPIC_').lower()}" for name in TOPICS} | {
        "WORKER_GROUP": f"worker-{tag}", "DELIVERY_GROUP": f"delivery-{tag}", "ANALYTICS_GROUP": f"analytics-{tag}"}
    await kafka.ensure_topics(settings_from(env, monkeypatch), 3)
    return dataclasses.replace(sms_tables, env=env)


@pytest.mark.parametrize("point, vendor_requests",
                         [("before_send", 1), ("after_send", 2), ("after_mark", 1), ("after_record", 1)])
@pytest.mark.soak
async def test_a_delivery_process_killed_mid_send(point: str, vendor_requests: int, sms_stack: Any,
                                                  vendors: VendorServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed before the send: the next process sends it once. Killed between Twilio's answer and
    the claim's mark (the one window): sent twice, recorded once. Killed after the mark or the
    record: not sent again, recorded once (with Twilio's id)."""
    stack = sms_stack
    s = settings_from(stack.env, monkeypatch)
    phone = f"+4072{free_port():07d}"
    async with Answers(s) as answer:
        reply = await answer(phone, f"kill {point}", channel="sms",
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
    assert delivered(stack.env, reply)[0].payload.externalId, "recorded with Twilio's id for it"


async def test_a_delivery_process_goes_on_past_bad_records_and_failing_replies(
        sms_stack: Any, vendors: VendorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Junk, a reply of a business without Twilio credentials (fails for good: demo-restaurant
    has none) and a reply whose
    sends fail twice before Twilio takes it: the junk is DLQ'd, the hopeless reply gets
    DeliveryFailed and the DLQ, the others are sent, and the group commits past all of them."""
    from tests.integration.kafka_helpers import read_topic

    stack = sms_stack
    s = settings_from(stack.env, monkeypatch)
    phone, nobody = f"+4073{free_port():07d}", f"+4074{free_port():07d}"
    twilio = {"via": "twilio", "from": TWILIO["fromNumber"]}
    async with Answers(s) as answer:
        await answer.publish(b"demo-salon#junk", b"not json")
        hopeless = await answer(nobody, "hello", "sms", twilio | {"to": nobody}, business="demo-restaurant")
        vendors.state.fail_status, vendors.state.fail_next = 503, 2
        good = await answer(phone, "after the junk", channel="sms", reply_to=twilio | {"to": phone})

    process = spawn_component("delivery", stack.env, tmp_path)
    try:
        await until(lambda: delivered(stack.env, good) and delivered(stack.env, hopeless))
        committed = False
        for _ in range(600):
            if committed := await committed_to_end(s):
                break
            await asyncio.sleep(0.1)
        assert committed, "the group committed past the junk and the failed reply"
        assert process.popen.poll() is None, "the loop goes on"
    finally:
        process.stop()
    assert [type(e).__name__ for e in delivered(stack.env, good)] == ["ReplyDelivered"]
    assert delivered(stack.env, good)[0].payload.attempts == 3
    failed = delivered(stack.env, hopeless)
    assert [type(e).__name__ for e in failed] == ["DeliveryFailed"] and "no twilio credentials" in failed[0].payload.error
    dlq = await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=2, timeout=30)
    stages = sorted((r["key"], r["value"]["stage"]) for r in dlq)
    assert stages == [("demo-restaurant#" + nobody, "delivery"), ("demo-salon#junk", "delivery-parse")]
    assert len([r for r in vendors.state.sent("/Messages.json") if r.form.get("To") == phone]) == 3


async def test_a_reply_from_a_newer_build_stops_delivery_with_exit_3_uncommitted(
        sms_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newer reply stays on its topic for good (a topic of this test's own)."""
    stack = sms_stack
    s = settings_from(stack.env, monkeypatch)
    newer = new_event("ReplyGenerated", business_id="demo-salon", user_id="newer", channel="sms",
                      payload={"content": "from a newer build", "inReplyTo": "e-1", "sessionId": "", "model": "m"})
    async with Answers(s) as answer:
        await answer.publish(b"demo-salon#newer", kafka.dumps(newer.with_seq(2).to_json_dict() | {"schemaVersion": 9}))
    process = spawn_component("delivery", stack.env, tmp_path)
    try:
        code = await asyncio.to_thread(process.popen.wait, 120)
    finally:
        process.stop()
    log = (tmp_path / "delivery.log").read_text()
    assert code == 3, log
    assert "schemaVersion 9" in log and "upgrade this delivery" in log
    assert not await committed_to_end(s), "the group's offset never passes the newer reply"
