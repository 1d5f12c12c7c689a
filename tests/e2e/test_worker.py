"""The worker on the real stack with a local OpenAI-compatible server: no head-of-line blocking
across customers, and a kill -9 in the middle of a load loses nothing and repeats nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import websockets

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.events import new_event
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, running_stack, set_credentials, settings_of
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour(delay_s=0.02, slow_marker="SLOW", held=threading.Event())) as server:
        yield server


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, model: ModelServer, vendors: VendorServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = isolated_env(endpoints, OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=model.base_url,
                       OPENAI_MODEL="local-model", OPENAI_TIMEOUT="120", **vendors.env())
    with running_stack(env, tmp_path_factory.mktemp("logs")) as running:
        set_credentials(running.env, "demo-restaurant", "twilio",
                        {"accountSid": "AC9", "authToken": "tok", "fromNumber": "+4420000"})
        yield running


async def _chat(stack: RunningStack, text: str) -> float:
    v = httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors").json()
    url = f"ws://127.0.0.1:{stack.port}/ws/demo-salon?userId={v['userId']}&token={v['token']}"
    async with websockets.connect(url) as ws:
        start = time.monotonic()
        await ws.send(json.dumps({"type": "message", "text": text, "clientMessageId": str(uuid.uuid4())}))
        while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "reply":
            pass
        return time.monotonic() - start


async def test_a_slow_model_answer_for_one_customer_does_not_delay_another(stack: RunningStack, model: ModelServer) -> None:
    """Customer A's model call is held until B has had a whole turn: B is not queued behind A."""
    held = model.behaviour.held
    assert held is not None
    slow = asyncio.create_task(_chat(stack, "SLOW question from customer A"))
    while not any("SLOW" in json.dumps(r["body"]) for r in model.behaviour.requests):  # A's call is at the model
        assert not slow.done(), "customer A was answered without the model"
        await asyncio.sleep(0.05)
    await _chat(stack, "quick question from customer B")
    assert not slow.done(), "customer B's reply came only after customer A's"
    held.set()
    await slow
    sent = [r["body"] for r in model.behaviour.requests]
    assert sent[-1]["model"] == "local-model" and sent[-1]["messages"][0]["role"] == "system"


@pytest.mark.soak
async def test_kill_9_of_the_worker_during_a_load_loses_and_repeats_nothing(stack: RunningStack, vendors: VendorServer) -> None:
    users, per_user = 50, 10
    settings = settings_of(stack)
    async with dynamodb_client(settings) as ddb:
        store = EventStore(ddb, settings.tables.events)
        for n in range(per_user):
            await asyncio.gather(*(store.append(new_event(
                "MessageReceived", business_id="demo-restaurant", user_id=f"+44{u:04d}", channel="sms",
                payload={"content": f"load {u}-{n}", "replyTo": {"via": "twilio", "from": "+4420000", "to": f"+44{u:04d}"}},
            ), external_id=f"sms:load-{u}-{n}") for u in range(users)))
            if n == 3:
                await asyncio.sleep(1.0)
                stack.processes["worker"].kill()
                stack.start("worker")
        total = users * per_user
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(vendors.state.sent("/Accounts/AC9/Messages.json")) < total:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # anything sent twice would show up now
        bodies = Counter(r.form["Body"] for r in vendors.state.sent("/Accounts/AC9/Messages.json"))
        assert len(bodies) == total and max(bodies.values()) == 1, "every reply delivered exactly once"
        for u in (0, users // 2, users - 1):
            events = await store.read(f"demo-restaurant#+44{u:04d}")
            inbound = [e.eventId for e in events if e.type == "MessageReceived"]
            replies = Counter(e.payload.inReplyTo for e in events if e.type == "ReplyGenerated")
            assert len(inbound) == per_user and all(replies[i] == 1 for i in inbound) and sum(replies.values()) == per_user


def test_a_stopped_worker_shuts_down_cleanly(stack: RunningStack) -> None:
    """SIGTERM: the worker finishes, closes its model client's pool and says it stopped (last
    test of the module: it stops the module's worker)."""
    worker = stack.processes["worker"]
    worker.stop()
    assert worker.popen.returncode == 0
    log = worker.log.read_text(errors="replace")
    assert "worker.stopped" in log
    assert "Unclosed client session" not in log and "Unclosed connector" not in log
