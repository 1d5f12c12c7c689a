"""A new appointment request reaches the owner as a handoff does: a record on the handoffs topic
and a signed call of the business's webhook; and the inbox shows how many bookings wait for the
owner beside its Bookings link, on the page and in the list's live updates. On moto's DynamoDB."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from agentstream.adapters.dynamo.credentials import CredentialStore, new_secret_key
from agentstream.adapters.memory_stores import memory_stores
from agentstream.adapters.owner_webhook import OwnerWebhook
from agentstream.events import Event, new_event
from agentstream.settings import Settings
from agentstream.streams.appointment_requests import AppointmentRequester, appointment_id
from agentstream.streams.handoff_notify import make_handoff_notifier
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture
from tests.unit.test_dead_letters import Worker
from tests.unit.test_inbox_sign_out import sign_in

SECRET = "whsec-owner-1"
DAY = (datetime.now(timezone.utc) + timedelta(days=10)).date()
ASKS = f"Puteți să mă programați pe {DAY.strftime('%d.%m.%Y')} la 10 pentru tuns?"


class Producer:
    """The Kafka producer as the notifier uses it: what it was given to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, json.loads(value)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def asking(business: str, user: str, text: str = ASKS) -> Event:
    return new_event("MessageReceived", business_id=business, user_id=user, channel="rest",
                     payload={"content": text, "replyTo": {"to": user}})


async def test_a_new_request_is_published_and_sent_signed_to_the_owners_webhook(moto_ddb: Any, moto_settings: Settings,
                                                                                  biz: str) -> None:
    credentials = CredentialStore(moto_ddb, moto_settings.tables.credentials, new_secret_key())
    await credentials.set(biz, "webhook", {"url": "https://owner.example/hook?token=t", "secret": SECRET})
    calls: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(204)

    producer, store = Producer(), memory_stores()[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as http:
        notify = make_handoff_notifier(producer, "agent.handoffs.v1", OwnerWebhook(credentials, http))
        told: list[Event] = []

        async def counted(event: Event) -> None:
            told.append(event)
            await notify(event)

        inbound = (await store.append(asking(biz, "ana"))).event
        chat = (await store.append(asking(biz, "bob", "Bună, ce program aveți?"))).event
        for message in (inbound, inbound, chat):  # a redelivery tells the owner once; no request, no notice
            await AppointmentRequester(store, counted)(message, {"timezone": "Europe/Bucharest"})
        for _ in range(1200):  # the webhook is called in the background (once per notice: it answers 204)
            if calls:
                break
            await asyncio.sleep(0.05)

    assert [e.type for e in told] == ["AppointmentRequested"]
    ((topic, key, record),) = producer.sent
    assert topic == "agent.handoffs.v1" and key == f"{biz}#ana".encode()
    assert record["type"] == "AppointmentRequested" and record["payload"]["appointmentId"] == appointment_id(inbound.eventId)
    (call,) = calls
    stamp = call.headers["x-agentstream-timestamp"].encode()
    expected = hmac.new(SECRET.encode(), stamp + b"." + call.content, hashlib.sha256).hexdigest()
    assert call.headers["x-agentstream-signature"] == f"sha256={expected}"
    body = json.loads(call.content)
    assert body["type"] == "AppointmentRequested" and body["eventId"] == record["eventId"]
    assert body["payload"]["at"].startswith(DAY.isoformat()) and body["payload"]["service"] == "tuns"


def badge(page: str) -> str | None:
    """The count beside the Bookings link ('' when hidden)."""
    found = re.search(r'<span class="unread" id="pending-bookings"[^>]*?( hidden)?>([^<]*)</span>', page)
    assert found, "the Bookings link has its count"
    return "" if found.group(1) else found.group(2)


async def first_update(gw: MotoGateway) -> dict[str, str]:
    async with gw.http.stream("GET", "/inbox/live") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                return json.loads(line[6:])
    raise AssertionError("the live list sent nothing")


async def test_the_inbox_counts_the_requests_waiting_for_the_owner(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    await sign_in(gw.http, gw.api_key)
    assert badge((await gw.http.get("/inbox")).text) == ""
    worker = Worker(gw.d.ddb, gw.d.settings, gw.business, "ana")
    await AppointmentRequester(worker.store)(await worker.say(ASKS, 0), {"timezone": "UTC"})  # the worker's hook
    await worker.drain()  # the request's fold writes its bookings row
    (request,) = [e for e in await worker.log() if e.type == "AppointmentRequested"]
    assert badge((await gw.http.get("/inbox")).text) == "1"
    assert (await first_update(gw))["pending"] == "1"
    done = await gw.http.post(f"/v1/businesses/{gw.business}/appointments/{request.payload.appointmentId}/decline",
                              headers={"Authorization": f"Bearer {gw.api_key}"})
    assert done.status_code == 202, done.text
    await worker.drain()
    assert badge((await gw.http.get("/inbox")).text) == ""
    assert (await first_update(gw))["pending"] == "0"
