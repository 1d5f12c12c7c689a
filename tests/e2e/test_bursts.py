"""Bursts on the real stack: a customer who writes in pieces gets one reply covering them all,
through a kill -9 of the worker inside the window, a message during the model call and a
second worker joining (a rebalance) inside the window."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.events import Event, MessageReceived, ReplyGenerated
from agentstream.projections.kinds import needs_reply
from agentstream.stack import spawn_component
from agentstream.streams.bursts import covered_by, covers, first_seqs
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, run_sync, running_stack, settings_of
from tests.services import Endpoints

pytestmark = pytest.mark.soak
WAIT_S = 180  # generous: the machine is shared


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour(delay_s=0.02, slow_marker="HOLD", held=threading.Event())) as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, model: ModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = isolated_env(endpoints, OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=model.base_url,
                       OPENAI_MODEL="local-model", OPENAI_TIMEOUT="120", REPLY_AFTER_QUIET_MS="2500")
    with running_stack(env, tmp_path_factory.mktemp("logs")) as running:
        run_sync(_within(running, 60_000))  # before any message: the worker reads it with the first
        yield running


async def _within(stack: RunningStack, ms: int) -> None:
    """demo-salon's replyWithinMs (a loaded machine may take longer than the default 8 s to draft)."""
    settings = settings_of(stack)
    async with dynamodb_client(settings) as ddb:
        await ddb.update_item(TableName=settings.tables.business_info, Key={"businessId": {"S": "demo-salon"}},
                              UpdateExpression="SET #s.replyWithinMs = :ms", ExpressionAttributeNames={"#s": "settings"},
                              ExpressionAttributeValues={":ms": {"N": str(ms)}})


class Visitor:
    """A widget visitor of demo-salon on its own socket."""

    def __init__(self, stack: RunningStack) -> None:
        v = httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json()
        self.user_id = v["userId"]
        self.url = f"ws://127.0.0.1:{stack.port}/ws/demo-salon?userId={v['userId']}&token={v['token']}"
        self.sent: list[str] = []
        self.ws: Any = None

    async def __aenter__(self) -> "Visitor":
        self.ws = await websockets.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def say(self, text: str) -> None:
        client_id = str(uuid.uuid4())
        self.sent.append(client_id)
        await self.ws.send(json.dumps({"type": "message", "text": text, "clientMessageId": client_id}))

    async def reply(self) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT_S))
            if frame["type"] == "reply":
                return frame


async def _log(stack: RunningStack, user_id: str) -> list[Event]:
    settings = settings_of(stack)
    async with dynamodb_client(settings) as ddb:
        return await EventStore(ddb, settings.tables.events).read(f"demo-salon#{user_id}")


async def _until(stack: RunningStack, user_id: str, done: Any) -> list[Event]:
    deadline = time.monotonic() + WAIT_S
    while True:
        events = await _log(stack, user_id)
        if done(events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.2)


def _covered_once(events: list[Event]) -> list[ReplyGenerated]:
    """Every inbound covered by exactly one reply (asserted); the replies."""
    replies = [e for e in events if isinstance(e, ReplyGenerated)]
    firsts = first_seqs(events)
    for m in (e for e in events if isinstance(e, MessageReceived) and needs_reply(e)):
        assert sum(covers(r, m, firsts[r.eventId]) for r in replies) == 1, f"inbound {m.seq} not covered exactly once"
    return replies


def _inbounds(n: int) -> Any:
    return lambda events: sum(isinstance(e, MessageReceived) for e in events) >= n


async def test_three_messages_in_a_burst_get_one_reply_covering_them(stack: RunningStack, model: ModelServer) -> None:
    async with Visitor(stack) as v:
        for text in ("Buna", "as vrea o programare", "joi la 10?"):
            await v.say(text)
            await asyncio.sleep(0.4)
        frame = await v.reply()
        events = await _until(stack, v.user_id, lambda es: any(isinstance(e, ReplyGenerated) for e in es))
    (reply,) = _covered_once(events)
    assert frame["covers"] == v.sent and frame["eventId"] == reply.eventId
    assert [m.payload.content for m in covered_by(reply, events, needs_reply)] == ["Buna", "as vrea o programare", "joi la 10?"]
    prompt = next(r["body"]["messages"] for r in model.behaviour.requests if "joi la 10?" in json.dumps(r["body"]))
    assert prompt[-1] == {"role": "user", "content": "Buna\nas vrea o programare\njoi la 10?"}


async def test_a_worker_killed_inside_the_window_answers_the_burst_once_after_restart(stack: RunningStack) -> None:
    async with Visitor(stack) as v:
        await v.say("Buna ziua")
        await v.say("cat costa un tuns?")
        await _until(stack, v.user_id, _inbounds(2))
        stack.processes["worker"].kill()  # -9: inside the window, or just after the reply; either way nothing is lost
        stack.start("worker")
        frame = await v.reply()
        events = await _until(stack, v.user_id, lambda es: any(isinstance(e, ReplyGenerated) for e in es))
        await asyncio.sleep(3.0)  # a second reply, if there were one, would be in the log by now
    replies = _covered_once(await _log(stack, v.user_id))
    assert len(replies) == 1 and frame["covers"] == v.sent and events


async def test_a_message_during_the_model_call_is_answered_with_the_burst(stack: RunningStack, model: ModelServer) -> None:
    held = model.behaviour.held
    assert held is not None
    held.clear()
    try:
        async with Visitor(stack) as v:
            first = f"HOLD {v.user_id[-8:]} vreau o programare"  # this run's own: repeated runs share the model
            await v.say(first)
            while not any(first in json.dumps(r["body"]) for r in model.behaviour.requests):
                await asyncio.sleep(0.1)  # the model is drafting
            await v.say("pentru maine")
            await _until(stack, v.user_id, _inbounds(2))
            held.set()
            frame = await v.reply()
        events = await _until(stack, v.user_id, lambda es: any(isinstance(e, ReplyGenerated) for e in es))
    finally:
        held.set()
    replies = _covered_once(await _log(stack, v.user_id))
    asked = [r["body"]["messages"][-1]["content"] for r in model.behaviour.requests if first in json.dumps(r["body"])]
    if len(replies) == 1:  # the worker took the second message during the call: the draft was dropped, the model asked again
        assert frame["covers"] == v.sent and asked[-1] == f"{first}\npentru maine"
        assert replies[0].payload.droppedUsage.completionTokens > 0
    else:  # it came too late for that draft (past replyWithinMs, or not yet taken): a reply of its own
        assert [r.payload.covers for r in replies] == [[v.sent[0]], [v.sent[1]]] and frame["covers"] == [v.sent[0]]


async def test_a_second_worker_joining_inside_the_window_answers_each_burst_once(stack: RunningStack) -> None:
    settings = settings_of(stack)
    visitors = [Visitor(stack) for _ in range(6)]
    second = None
    try:
        for v in visitors:
            await v.__aenter__()
            await v.say("Buna")
            await v.say("aveti liber azi?")
        second = spawn_component("worker-b", stack.env, stack.logs, argv=("-m", "agentstream.cli", "worker"))  # the group rebalances
        frames = await asyncio.gather(*(v.reply() for v in visitors))
        await asyncio.sleep(3.0)
        for v, frame in zip(visitors, frames):
            replies = _covered_once(await _log(stack, v.user_id))
            assert replies and frame["covers"][0] == v.sent[0]
        assert settings
    finally:
        for v in visitors:
            if v.ws is not None:
                await v.__aexit__()
        if second is not None:
            second.stop()
