"""The worker's dead-letter path on the real Kafka and ministack: records it cannot read and
events whose processing fails every attempt go to `agent.dlq.v1` with their error and the
original record, the other conversations are still answered, and the consumer group's
committed offsets move past every one of them (nothing stays stuck)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, ReplyGenerated, new_event
from agentstream.projections.base import Put
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.keyed import KeyedExecutor
from agentstream.adapters.kafka.dlq import Dlq
from agentstream.streams.runner import RetryPolicy
from agentstream.streams.worker import build_app
from tests.conftest import isolated_env, settings_from
from tests.e2e.stack import log_events, prepare, running_stack
from tests.integration.kafka_helpers import as_records, publish, read_topic
from tests.integration.world import CountingResponder
from tests.services import Endpoints

pytestmark = pytest.mark.integration


async def append(s: Settings, user: str, text: str) -> Event:
    async with dynamodb_client(s) as ddb:
        return (await EventStore(ddb, s.tables.events).append(new_event(
            "MessageReceived", business_id="demo-salon", user_id=user, channel="websocket", payload={"content": text},
        ))).event


async def exit_code(proc: Any, timeout: float) -> int | None:
    """The process's exit code once it has stopped by itself (None if still running at `timeout`)."""
    deadline = time.monotonic() + timeout
    while proc.popen.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return proc.popen.returncode


async def wait_committed_to_end(s: Settings, timeout: float = 60.0) -> dict[int, tuple[int, int]]:
    """Wait until the worker's group has committed the end offset of every partition of the
    events topic; returns {partition: (committed, end)} as last seen."""
    partitions = [TopicPartition(s.topic_events, p) for p in range(s.kafka_partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await consumer.start()
    await admin.start()
    seen: dict[int, tuple[int, int]] = {}
    try:
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(s.worker_group)
            seen = {tp.partition: (committed[tp].offset if tp in committed else 0, ends[tp]) for tp in partitions}  # empty: 0
            if all(c == e for c, e in seen.values()):
                break
            await asyncio.sleep(0.5)
        return seen
    finally:
        await admin.close()
        await consumer.stop()


async def test_unreadable_records_go_to_the_dlq_and_the_worker_moves_on(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)  # no OPENAI_API_KEY: the offline responder answers
    with running_stack(env, tmp_path / "logs", components=("worker",)) as stack:
        s = settings_from(stack.env, monkeypatch)
        garbage = b"\x00this is {not json"
        broken = {"type": "MessageReceived", "eventId": "e-broken"}  # valid JSON, not a valid event
        b = await append(s, "B", "Bună ziua, aveți loc mâine?")
        await publish(s, [("demo-salon#A", kafka.dumps(broken)), ("demo-salon#C", garbage), *as_records([b])])

        dlq = await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=2, timeout=60)
        by_key = {r["key"]: r["value"] for r in dlq}
        assert set(by_key) == {"demo-salon#A", "demo-salon#C"}
        assert by_key["demo-salon#A"]["stage"] == "parse" and "ValidationError" in by_key["demo-salon#A"]["error"]
        assert by_key["demo-salon#A"]["event"] == broken
        assert by_key["demo-salon#C"]["stage"] == "parse"
        assert by_key["demo-salon#C"]["error"].startswith(("JSONDecodeError", "UnicodeDecodeError"))
        assert by_key["demo-salon#C"]["event"] == garbage.decode("utf-8", "replace")
        assert all(r["value"]["failedAt"].endswith("Z") for r in dlq)

        offsets = await wait_committed_to_end(s)
        assert all(c == e for c, e in offsets.values()), f"committed vs end per partition: {offsets}"


async def test_an_event_from_a_newer_build_stops_the_worker_and_is_not_skipped(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "logs", components=("worker",)) as stack:
        s = settings_from(stack.env, monkeypatch)
        b = await append(s, "B", "Bună ziua")
        future = new_event("MessageReceived", business_id="demo-salon", user_id="A", channel="websocket",
                           payload={"content": "from a newer build"}).with_seq(1).to_json_dict() | {"schemaVersion": 99}
        await publish(s, [*as_records([b]), ("demo-salon#A", kafka.dumps(future))])
        assert await exit_code(stack.processes["worker"], 90) == 3, "the worker stops with the upgrade exit code"
        log = (tmp_path / "logs" / "worker.log").read_text()
        assert "worker.upgrade_needed" in log and "schemaVersion 99" in log and "upgrade this worker" in log
        assert await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=1, timeout=3) == []
        (record,) = [r for r in await read_topic(s.kafka_bootstrap_servers, s.topic_events, expect=2) if r["key"] == "demo-salon#A"]
        committed = (await wait_committed_to_end(s, timeout=5))[record["partition"]][0]
        assert committed <= record["offset"], "the group's offset never passes the unreadable record"
        assert log_events(stack.env, "demo-salon#A") == []  # nothing was made of it


async def test_an_event_of_an_unknown_channel_stops_the_worker_and_is_not_skipped(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "logs", components=("worker",)) as stack:
        s = settings_from(stack.env, monkeypatch)
        b = await append(s, "B", "Bună ziua")
        unknown = new_event("MessageReceived", business_id="demo-salon", user_id="A", channel="websocket",
                            payload={"content": "from a channel a newer build registered"}
                            ).with_seq(1).to_json_dict() | {"channel": "carrier-pigeon"}
        await publish(s, [*as_records([b]), ("demo-salon#A", kafka.dumps(unknown))])
        assert await exit_code(stack.processes["worker"], 90) == 3, "the worker stops with the upgrade exit code"
        log = (tmp_path / "logs" / "worker.log").read_text()
        assert "worker.upgrade_needed" in log and "channel 'carrier-pigeon'" in log and "upgrade this worker" in log
        assert await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=1, timeout=3) == []
        (record,) = [r for r in await read_topic(s.kafka_bootstrap_servers, s.topic_events, expect=2) if r["key"] == "demo-salon#A"]
        committed = (await wait_committed_to_end(s, timeout=5))[record["partition"]][0]
        assert committed <= record["offset"], "the group's offset never passes the unreadable record"
        assert log_events(stack.env, "demo-salon#A") == []


class BrokenProjections(ProjectionStore):
    """The projection write of one conversation always fails (a table it cannot write)."""

    def __init__(self, ddb: Any, s: Settings, broken_stream: str) -> None:
        super().__init__(ddb, s.tables)
        self.broken_stream = broken_stream
        self.failures = 0

    async def write(self, puts: list[Put], appends: list[dict[str, Any]] | None = None) -> None:
        if any(f"{p.item.get('businessId')}#{p.item.get('userId')}" == self.broken_stream for p in puts):
            self.failures += 1
            raise RuntimeError("injected projection failure")
        await super().write(puts, appends)


@contextmanager
def worker_in_thread(s: Settings, broken_stream: str, retry: RetryPolicy) -> Iterator[dict[str, Any]]:
    """The worker as `run_worker` composes it, with a failing projection store and short retry
    delays, on an event loop of its own in a thread."""
    state: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with AsyncExitStack() as stack:
            ddb = await stack.enter_async_context(dynamodb_client(s))
            producer = kafka.producer(s)
            await producer.start()
            stack.push_async_callback(producer.stop)

            async def publish_reply(reply: Event, first: bool = False) -> None:
                await (await producer.send(s.topic_replies, key=reply.streamId.encode(), value=kafka.dumps(reply.to_json_dict())))

            state["projections"] = BrokenProjections(ddb, s, broken_stream)
            state["responder"] = CountingResponder()
            processor = ConversationProcessor(EventStore(ddb, s.tables.events), state["projections"],
                                              BusinessDirectory(ddb, s.tables), state["responder"], publish_reply)
            executor = KeyedExecutor(s.worker_max_inflight)
            app = build_app(s, processor, Dlq(producer, s.topic_dlq), executor, retry=retry)
            await app.start()
            ready.set()
            try:
                await stop.wait()
                await asyncio.wait_for(executor.join(), timeout=30)
            finally:
                await app.stop()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test below
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="worker", daemon=True)
    thread.start()
    assert ready.wait(60), "the worker did not start"
    if "error" in state:
        raise state["error"]
    try:
        yield state
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(60)


async def test_an_event_failing_every_attempt_goes_to_the_dlq_and_others_are_answered(
    endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)
    prepare(env)
    s = settings_from(env, monkeypatch)
    retry = RetryPolicy(attempts=4, wait_initial=0.05, wait_max=0.2, wait_jitter=0.05)
    with worker_in_thread(s, "demo-salon#broken", retry) as worker:
        broken = await append(s, "broken", "Această conversație nu se poate salva")
        others = [await append(s, f"ok{i}", f"Aveți loc azi? {i}") for i in range(6)]
        await publish(s, as_records([broken, *others]))

        dlq = await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=1, timeout=60)
        assert len(dlq) == 1
        record = dlq[0]
        assert record["key"] == "demo-salon#broken" and record["value"]["stage"] == "process"
        assert record["value"]["error"] == "RuntimeError: injected projection failure"
        assert record["value"]["event"] == broken.to_json_dict()
        assert worker["projections"].failures == retry.attempts

        offsets = await wait_committed_to_end(s)
        assert all(c == e for c, e in offsets.values()), f"committed vs end per partition: {offsets}"
        # the first attempt writes the reply with the projections, so nothing; each later one appends it
        # first (or finds it logged) and publishes it
        replies = await read_topic(s.kafka_bootstrap_servers, s.topic_replies, expect=len(others) + retry.attempts - 1,
                                   timeout=10)
        answered = {r["value"]["payload"]["inReplyTo"] for r in replies}
        assert {e.eventId for e in others} | {broken.eventId} == answered
        for event in others:
            logged = [e for e in log_events(env, event.streamId) if isinstance(e, ReplyGenerated)]
            assert [e.payload.inReplyTo for e in logged] == [event.eventId]
        # the reply went into the log on the second attempt, with the first one's answer; the others found it there
        logged = [e for e in log_events(env, "demo-salon#broken") if isinstance(e, ReplyGenerated)]
        assert [e.payload.inReplyTo for e in logged] == [broken.eventId]
        assert worker["responder"].answered.count(broken.eventId) == 1


async def test_a_reply_from_a_newer_build_stops_delivery_and_is_not_committed(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "logs", components=("gateway",)) as stack:
        s = settings_from(stack.env, monkeypatch)
        reply = new_event("ReplyGenerated", business_id="demo-salon", user_id="A", channel="websocket",
                          payload={"content": "from a newer build", "inReplyTo": "e-1", "sessionId": "s", "model": "m"})
        newer = reply.with_seq(2).to_json_dict() | {"schemaVersion": 9}
        prod = kafka.producer(s)
        await prod.start()
        try:
            await prod.send_and_wait(s.topic_replies, key=b"demo-salon#A", value=kafka.dumps(newer))
        finally:
            await prod.stop()
        assert await exit_code(stack.processes["gateway"], 60) == 3, "the gateway stops with the upgrade exit code"
        log = (tmp_path / "logs" / "gateway.log").read_text()
        assert "schemaVersion 9" in log and "upgrade this gateway" in log
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(s.delivery_group)
        finally:
            await admin.close()
        assert all(meta.offset <= 0 for tp, meta in committed.items() if tp.topic == s.topic_replies)
