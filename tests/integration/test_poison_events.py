"""A poison event on the real Kafka and ministack (issue 15): an inbound the model fails on
every attempt goes to the DLQ and is recorded as `EventSkipped` in its conversation; the
customer's next message (logged before the skip was) gets its reply; `agentstream dlq list`
shows it; after the fix `agentstream dlq retry` brings it back, the worker re-folds the
customer and answers it once; `agentstream replay --verify` finds nothing to rebuild.

The real bridge carries the log to Kafka (so the worker's own appends, the skip and the
revocation come back to it as in production); the worker runs as `run_worker` composes it, in
a thread, with a model that refuses messages carrying the poison word until it is fixed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.dead_letters import DeadLetterIndex
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, EventSkipped, ReplyGenerated, new_event
from agentstream.projections.context import ReplyContext
from agentstream.registry import PROJECTIONS
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.dead_letters import SkipRecorder
from agentstream.streams.keyed import KeyedExecutor
from agentstream.adapters.kafka.dlq import Dlq
from agentstream.streams.runner import RetryPolicy
from agentstream.streams.worker import build_app
from tests.conftest import isolated_env, settings_from
from tests.e2e.stack import log_events, running_stack
from tests.integration.kafka_helpers import read_topic
from tests.services import Endpoints

pytestmark = pytest.mark.integration
POISON = "otravă"
RETRY = RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.2, wait_jitter=0.05)


class PoisonedModel:
    """The offline responder; a message with the poison word fails every call until fixed."""

    def __init__(self) -> None:
        self.broken = True
        self.failures = 0
        self.answered: list[str] = []

    async def answer(self, ctx: ReplyContext) -> Answer:
        if self.broken and POISON in ctx.message:
            self.failures += 1
            raise RuntimeError("model refused the message")
        self.answered.append(ctx.inbound_event_id)
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


@contextmanager
def worker_in_thread(s: Settings, model: PoisonedModel) -> Iterator[None]:
    """The worker as `run_worker` composes it (skips recorded), on a loop of its own in a thread."""
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

            store = EventStore(ddb, s.tables.events)
            processor = ConversationProcessor(store, ProjectionStore(ddb, s.tables), BusinessDirectory(ddb, s.tables),
                                              model, publish_reply)
            executor = KeyedExecutor(s.worker_max_inflight)
            app = build_app(s, processor, Dlq(producer, s.topic_dlq), executor, retry=RETRY,
                            skips=SkipRecorder(store, DeadLetterIndex(ddb, s.tables.events)))
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
        yield
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(60)


async def say(s: Settings, user: str, text: str) -> Event:
    """A customer's message appended to the log, as the gateway does."""
    async with dynamodb_client(s) as ddb:
        return (await EventStore(ddb, s.tables.events).append(new_event(
            "MessageReceived", business_id="demo-salon", user_id=user, channel="websocket", payload={"content": text},
        ))).event


async def logged(env: dict[str, str], stream: str, until: Any, timeout: float = 90.0) -> list[Event]:
    """The stream's events once `until(events)` holds (the last read if it never does)."""
    deadline = time.monotonic() + timeout
    while True:
        events = await asyncio.to_thread(log_events, env, stream)
        if until(events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.3)


async def folded_to_head(s: Settings, user: str, timeout: float = 60.0) -> bool:
    """Whether every projection of the customer reaches the head of the log within `timeout`."""
    deadline = time.monotonic() + timeout
    async with dynamodb_client(s) as ddb:
        store, projections = EventStore(ddb, s.tables.events), ProjectionStore(ddb, s.tables)
        while True:
            head = await store.head(f"demo-salon#{user}")
            states = await projections.load_states(PROJECTIONS, "demo-salon", user)
            if all(st is not None and int(st["lastSeq"]) == head for st in states.values()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.3)


def replies_to(events: list[Event]) -> list[str]:
    return [e.payload.inReplyTo for e in events if isinstance(e, ReplyGenerated)]


async def agentstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command line, as a user runs it with the stack's environment."""
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "agentstream.cli", *args],
                                   env=os.environ | env, capture_output=True, text=True, timeout=180)


async def test_a_poison_inbound_is_skipped_listed_and_answered_after_the_fix(
    endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path / "logs", components=("bridge",)) as stack:
        s = settings_from(stack.env, monkeypatch)
        model = PoisonedModel()
        with worker_in_thread(s, model):
            poison = await say(s, "P", f"{POISON}: vreau o programare")
            after = await say(s, "P", "Aveți loc mâine la 10?")  # logged before the worker met the poison
            stream = poison.streamId
            events = await logged(stack.env, stream, lambda es: after.eventId in replies_to(es))
            assert replies_to(events) == [after.eventId], "the next message is answered; the poison is not"
            (skip,) = [e for e in events if isinstance(e, EventSkipped)]
            assert skip.payload.seq == poison.seq and skip.payload.error == "RuntimeError: model refused the message"
            assert skip.seq > after.seq and model.failures == RETRY.attempts

            (dead,) = await read_topic(s.kafka_bootstrap_servers, s.topic_dlq, expect=1, timeout=30)
            assert dead["key"] == stream and dead["value"]["stage"] == "process"
            assert dead["value"]["event"]["eventId"] == poison.eventId

            listed = await agentstream(stack.env, "dlq", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            (entry,) = json.loads(listed.stdout)
            assert (entry["eventId"], entry["userId"], entry["seq"], entry["type"]) == (poison.eventId, "P", poison.seq, "MessageReceived")
            assert entry["error"] == "RuntimeError: model refused the message"

            model.broken = False  # the fix
            retried = await agentstream(stack.env, "dlq", "retry", "--event", poison.eventId, "--wait", "120")
            assert retried.returncode == 0, retried.stdout + retried.stderr
            assert "applied" in retried.stdout and poison.eventId in retried.stdout

            events = await logged(stack.env, stream, lambda es: poison.eventId in replies_to(es))
            assert sorted(replies_to(events)) == sorted([after.eventId, poison.eventId])
            assert model.answered.count(poison.eventId) == 1
            answered = await read_topic(s.kafka_bootstrap_servers, s.topic_replies, expect=2, timeout=30)
            assert {r["value"]["payload"]["inReplyTo"] for r in answered} == {after.eventId, poison.eventId}

            listed = await agentstream(stack.env, "dlq", "list")
            assert listed.returncode == 0 and listed.stdout.strip() == "no skipped events", listed.stdout + listed.stderr
            assert await folded_to_head(s, "P"), "the worker folds the reply it appended"
        verify = await agentstream(stack.env, "replay", "--verify", "--business", "demo-salon", "--user", "P")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "no differences" in verify.stdout + verify.stderr
        again = await agentstream(stack.env, "dlq", "retry", "--event", poison.eventId)
        assert again.returncode == 1 and again.stdout == ""
        assert again.stderr.strip() == f"agentstream: event {poison.eventId!r} is not skipped (see `agentstream dlq list`)"
