"""The owner is told of a handoff: a record on agent.handoffs.v1 (real Kafka, keyed by streamId)
and a signed call of the business's webhook (a real local HTTP server), retried with backoff on
5xx; a webhook that keeps failing shows in `agentstream status`'s figures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentstream.adapters.dynamo.credentials import CredentialStore, new_secret_key
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.kafka.client import ensure_topics, producer
from agentstream.local.services import free_port
from agentstream.adapters.owner_webhook import OwnerWebhook, webhook_statuses
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import new_event
from agentstream.retry import RetryPolicy
from agentstream.settings import Settings
from agentstream.streams.handoff_notify import make_handoff_notifier
from agentstream.streams.status import describe_webhook
from tests.integration.kafka_helpers import read_topic

SECRET = "whsec-test-1"


@dataclass
class Receiver:
    """A webhook receiver failing its first `fail_first` calls with 503."""

    fail_first: int = 0
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.calls.append((dict(request.headers), await request.body()))
        return Response(status_code=503 if len(self.calls) <= self.fail_first else 204)


async def serve(receiver: Receiver) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}/hook?token=abc"


@pytest.fixture
async def store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CredentialStore]:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.credentials])
        yield CredentialStore(ddb, settings.tables.credentials, new_secret_key())


def handoff(user: str = "u1"):
    return new_event("HandoffRequested", business_id="demo-salon", user_id=user, channel="system",
                     payload={"sessionId": "s1", "by": "customer", "reason": "a human please"})


def verify(headers: dict[str, str], body: bytes) -> bool:
    expected = hmac.new(SECRET.encode(), headers["x-agentstream-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-agentstream-signature"], f"sha256={expected}")


async def test_the_webhook_is_signed_and_retried_until_it_answers(store: CredentialStore) -> None:
    receiver = Receiver(fail_first=2)
    server, task, url = await serve(receiver)
    try:
        await store.set("demo-salon", "webhook", {"url": url, "secret": SECRET})
        async with httpx.AsyncClient() as http:
            hook = OwnerWebhook(store, http, RetryPolicy(attempts=4, wait_initial=0.05, wait_max=0.2))
            event = handoff()
            assert await hook.notify("demo-salon", event.to_json_dict()) is True
    finally:
        server.should_exit = True
        await task
    assert len(receiver.calls) == 3
    assert all(verify(headers, body) for headers, body in receiver.calls)
    headers, body = receiver.calls[-1]
    assert b'"HandoffRequested"' in body and event.eventId.encode() in body
    tampered = body.replace(b"customer", b"owner")
    assert not verify(headers, tampered)
    (status,) = await webhook_statuses(store)
    assert status["failures"] == "0" and describe_webhook(status).startswith("ok")
    assert "token" not in status["url"]  # the query (which may hold a secret) is not kept


async def test_a_failing_webhook_shows_in_status(store: CredentialStore) -> None:
    receiver = Receiver(fail_first=99)
    server, task, url = await serve(receiver)
    try:
        await store.set("demo-salon", "webhook", {"url": url, "secret": SECRET})
        async with httpx.AsyncClient() as http:
            hook = OwnerWebhook(store, http, RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.1))
            assert await hook.notify("demo-salon", handoff().to_json_dict()) is False
            assert await hook.notify("demo-salon", handoff().to_json_dict()) is False
    finally:
        server.should_exit = True
        await task
    assert len(receiver.calls) == 6
    (status,) = await webhook_statuses(store)
    assert status["failures"] == "2" and "RetryableCall" in status["lastError"]
    assert describe_webhook(status).startswith("FAILING: 2 notification(s) failed")


async def test_no_webhook_configured_is_no_call(store: CredentialStore) -> None:
    async with httpx.AsyncClient() as http:
        assert await OwnerWebhook(store, http).notify("demo-restaurant", handoff().to_json_dict()) is None


async def test_a_handoff_is_published_to_the_handoffs_topic_keyed_by_stream(settings: Settings) -> None:
    await ensure_topics(settings, partitions=1)
    kafka = producer(settings)
    await kafka.start()
    try:
        notify = make_handoff_notifier(kafka, settings.topic_handoffs, None)
        events = [handoff("u1"), handoff("u2")]
        for event in events:
            await notify(event)
    finally:
        await kafka.stop()
    records = await read_topic(settings.kafka_bootstrap_servers, settings.topic_handoffs, expect=2)
    assert [(r["key"], r["value"]["eventId"]) for r in records] == [(e.streamId, e.eventId) for e in events]
