"""A conversation handed to a person, end to end on the real local stack (bridge, worker, gateway,
delivery processes; Kafka and ministack): the owner takes over through the API, the customer is
told, their next message gets no AI reply, the owner's message reaches them (Twilio SMS through
the delivery process; the widget through its socket), and after release the AI answers again.
`replay --verify` is clean afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Iterator

import httpx
import pytest
import websockets

from agentstream.streams.replay import Scope
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.wiring import new_replayer
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, set_credentials, settings_of
from tests.e2e.test_channels import TWILIO, twilio_post, wait_for
from tests.e2e.test_widget import receive, visitor, ws_url
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints



RUNS = range(int(os.environ.get("AGENTSTREAM_TEST_REPEAT", "1")))  # repeated on one stack: the 20-run check


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, vendors: VendorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(isolated_env(endpoints, **vendors.env()), tmp_path_factory.mktemp("logs")) as running:
        set_credentials(running.env, "demo-salon", "twilio", TWILIO)
        yield running


def api(stack: RunningStack, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", json=body or {},
                      headers={"Authorization": f"Bearer {stack.api_keys['demo-salon']}"}, timeout=30)


def sms(phone: str, sid: str, text: str) -> dict[str, str]:
    return {"MessageSid": f"{sid}-{phone}", "From": phone, "To": TWILIO["fromNumber"], "Body": text, "NumMedia": "0"}


def texts_to_customer(vendors: VendorServer, phone: str) -> list[str]:
    return [r.form["Body"] for r in vendors.state.sent("/Messages.json") if r.form.get("To") == phone]


def verify_clean(stack: RunningStack, user: str) -> list[str]:
    async def run() -> list[str]:
        settings = settings_of(stack)
        async with dynamodb_client(settings) as ddb:
            return (await new_replayer(ddb, settings).run(Scope("demo-salon", user), verify=True)).differences
    return run_sync(run())


@pytest.mark.parametrize("run", RUNS)
def test_an_sms_customer_handed_to_a_person_and_back(stack: RunningStack, vendors: VendorServer, run: int) -> None:
    phone = f"+4076{random.randrange(10**7):07d}"  # a customer of this run only
    stream = f"demo-salon#{phone}"
    assert twilio_post(stack, sms(phone, "SMh1", "Bună ziua, aveți loc vineri la tuns?")).status_code == 200
    wait_for(lambda: len(texts_to_customer(vendors, phone)) == 1)
    sid = next(e.payload.sessionId for e in log_events(stack.env, stream) if e.type == "ReplyGenerated")
    taken = api(stack, f"/v1/sessions/{sid}/handoff", {"reason": "e2e"})
    assert taken.status_code == 202, taken.text
    wait_for(lambda: len(texts_to_customer(vendors, phone)) == 2)
    assert "coleg" in texts_to_customer(vendors, phone)[1], "told once, in Romanian, that a person will answer"
    assert twilio_post(stack, sms(phone, "SMh2", "Mai e cineva acolo?")).status_code == 200
    wait_for(lambda: any(e.type == "MessageReceived" and e.payload.externalId == f"SMh2-{phone}" for e in log_events(stack.env, stream)))
    sent = api(stack, f"/v1/sessions/{sid}/owner-messages", {"text": "Bună, sunt Ana. Da, vineri la 10 e liber.", "author": "Ana"})
    assert sent.status_code == 202, sent.text
    wait_for(lambda: len(texts_to_customer(vendors, phone)) == 3)
    assert texts_to_customer(vendors, phone)[2] == "Bună, sunt Ana. Da, vineri la 10 e liber."
    events = log_events(stack.env, stream)
    quiet = next(e for e in events if e.type == "MessageReceived" and e.payload.externalId == f"SMh2-{phone}")
    # the owner's message comes after it in the log and was delivered: the worker had folded it already
    assert not [e for e in events if e.type == "ReplyGenerated" and e.payload.inReplyTo == quiet.eventId]
    owner_event = next(e for e in events if e.type == "OwnerReplied")
    wait_for(lambda: any(e.type == "ReplyDelivered" and e.payload.replyEventId == owner_event.eventId
                         for e in log_events(stack.env, stream)))
    assert api(stack, f"/v1/sessions/{sid}/release").status_code == 202
    assert twilio_post(stack, sms(phone, "SMh3", "Mulțumesc! La ce oră închideți?")).status_code == 200
    wait_for(lambda: len(texts_to_customer(vendors, phone)) == 4)
    events = log_events(stack.env, stream)
    answered = next(e for e in events if e.type == "MessageReceived" and e.payload.externalId == f"SMh3-{phone}")
    assert [e for e in events if e.type == "ReplyGenerated" and e.payload.inReplyTo == answered.eventId]
    listed = httpx.get(f"{stack.base_url}/v1/businesses/demo-salon/conversations?status=ai",
                       headers={"Authorization": f"Bearer {stack.api_keys['demo-salon']}"})
    assert sid in [c["sessionId"] for c in listed.json()["conversations"]]
    assert verify_clean(stack, phone) == []


@pytest.mark.parametrize("run", RUNS)
async def test_a_widget_customer_gets_the_owners_message_and_no_ai_reply_meanwhile(stack: RunningStack, run: int) -> None:
    v = visitor(stack)
    async with websockets.connect(ws_url(stack, v)) as ws:
        await ws.send(json.dumps({"type": "message", "text": "Hello, can I book for Friday?", "clientMessageId": f"w1-{v['userId']}"}))
        first = await receive(ws, "reply")
        sid = first["sessionId"]
        assert (await asyncio.to_thread(api, stack, f"/v1/sessions/{sid}/handoff")).status_code == 202
        notice = await receive(ws, "reply")
        assert notice["author"] == "ai" and "team" in notice["text"]
        await ws.send(json.dumps({"type": "message", "text": "hello?", "clientMessageId": f"w2-{v['userId']}"}))
        quiet = (await receive(ws, "ack"))["eventId"]
        sent = await asyncio.to_thread(api, stack, f"/v1/sessions/{sid}/owner-messages",
                                       {"text": "<b>Hi</b>, Ana here: Friday 10:00 works.", "author": "Ana"})
        assert sent.status_code == 202, sent.text
        person = await receive(ws, "reply")  # the next frame after the quiet message: no AI reply came first
        assert person["author"] == "human" and person["text"] == "<b>Hi</b>, Ana here: Friday 10:00 works."
        assert person.get("inReplyTo") != quiet
        assert (await asyncio.to_thread(api, stack, f"/v1/sessions/{sid}/release")).status_code == 202
        await ws.send(json.dumps({"type": "message", "text": "thanks, when do you close?", "clientMessageId": f"w3-{v['userId']}"}))
        asked = (await receive(ws, "ack"))["eventId"]
        answer = await receive(ws, "reply")
        assert answer["inReplyTo"] == asked and answer["author"] == "ai"
    assert await asyncio.to_thread(verify_clean, stack, v["userId"]) == []
