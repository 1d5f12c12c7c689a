"""Handing a conversation to a person over the business API, on the gateway served in the test's
loop over the real local DynamoDB server; the worker's processor (world.py) folds what the routes
append: the AI stays quiet while a person has the conversation, and answers again after release."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.events import Event, new_event, stream_id, utc_now
from agentstream.streams.replay import Scope
from agentstream.wiring import gateway_deps, new_replayer
from tests.conftest import isolated_env, settings_from
from tests.integration.test_gateway_auth import RESTAURANT, SALON, Gateway, _serve
from tests.integration.world import CountingResponder, World, drain, new_processor
from tests.services import Endpoints


@dataclass
class Owner:
    gw: Gateway
    world: World

    def headers(self, business: str = SALON) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gw.keys[business]}"}

    async def customer_says(self, user: str, text: str, channel: str = "websocket", ago: timedelta = timedelta(0),
                            reply_to: dict[str, str] | None = None) -> Event:
        """A customer's message in the log, folded (and answered) by the worker's processor."""
        event = new_event("MessageReceived", business_id=SALON, user_id=user, channel=channel,
                          payload={"content": text, "replyTo": reply_to or {"socket": "widget"}},
                          occurred_at=utc_now() - ago)
        appended = await self.world.store.append(event)
        await drain(self.world, event.streamId)
        return appended.event

    async def post(self, session_id: str, action: str, body: Any = None, business: str = SALON,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        response = await self.gw.http.post(f"/v1/sessions/{session_id}/{action}", content=content,
                                           headers=self.headers(business) if headers is None else headers)
        return response

    async def log(self, user: str) -> list[Event]:
        return await self.world.store.read(stream_id(SALON, user))

    async def session_id(self, user: str) -> str:
        return next(e.payload.sessionId for e in await self.log(user) if e.type == "ReplyGenerated")

    async def conversations(self, status: str | None = None) -> list[dict[str, Any]]:
        query = f"?status={status}" if status else ""
        response = await self.gw.http.get(f"/v1/businesses/{SALON}/conversations{query}", headers=self.headers())
        assert response.status_code == 200, response.text
        return response.json()["conversations"]


@pytest.fixture(scope="module")
async def owner(endpoints: Endpoints) -> AsyncIterator[Owner]:
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(isolated_env(endpoints), mp)
        await setup(settings, with_topics=False)
        await populate(settings)
        keys = await demo_credentials(settings, [SALON, RESTAURANT])
        async with AsyncExitStack() as stack:
            d = await gateway_deps(stack, settings)
            server, task, port = await _serve(d)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            published: list[Event] = []
            responder = CountingResponder()
            world = World(d.ddb, settings, d.store, new_processor(d.ddb, settings, responder, published), responder, published)
            try:
                yield Owner(Gateway(d, http, port, keys), world)
            finally:
                server.should_exit = True
                await task


def fresh(name: str) -> str:
    """A customer of this run only (the module's tables are shared by its tests)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def replied_to(events: list[Event]) -> set[str]:
    return {e.payload.inReplyTo for e in events if e.type == "ReplyGenerated"}


async def test_handoff_quiets_the_ai_until_release_and_the_owner_writes_in_between(owner: Owner) -> None:
    r1 = fresh("r1")
    await owner.customer_says(r1, "Bună, aveți loc vineri?")
    sid = await owner.session_id(r1)
    taken = await owner.post(sid, "handoff", {"reason": "client VIP"})
    assert taken.status_code == 202 and taken.json()["status"] == "waiting"
    await drain(owner.world, stream_id(SALON, r1))
    waiting = await owner.conversations("waiting")
    assert sid in [c["sessionId"] for c in waiting] and all(c["status"] == "waiting" for c in waiting)
    again = await owner.post(sid, "handoff")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    quiet = await owner.customer_says(r1, "mai sunteți acolo?")
    assert quiet.eventId not in replied_to(await owner.log(r1))
    sent = await owner.post(sid, "owner-messages", {"text": "Bună, sunt Ana: da, vineri la 10.", "author": "Ana"})
    assert sent.status_code == 202, sent.text
    await drain(owner.world, stream_id(SALON, r1))
    person = next(e for e in await owner.log(r1) if e.type == "OwnerReplied")
    assert person.payload.author == "Ana" and person.payload.deliverTo == {"socket": "widget"} and person.channel == "websocket"
    assert person.eventId in [p.eventId for p in owner.world.published]
    assert sid in [c["sessionId"] for c in await owner.conversations("human")]
    assert (await owner.post(sid, "release")).status_code == 202
    await drain(owner.world, stream_id(SALON, r1))
    assert sid in [c["sessionId"] for c in await owner.conversations("ai")]
    answered = await owner.customer_says(r1, "mulțumesc! la ce oră închideți?")
    events = await owner.log(r1)
    assert answered.eventId in replied_to(events)
    assert [e.type for e in events if e.type.startswith("Handoff")] == ["HandoffRequested", "HandoffNoticeSent", "HandoffReleased"]
    report = await new_replayer(owner.world.ddb, owner.world.settings).run(Scope(SALON, r1), verify=True)
    assert report.differences == []


async def test_an_owner_message_hands_off_without_a_separate_notice(owner: Owner) -> None:
    r2 = fresh("r2")
    await owner.customer_says(r2, "hello, do you do colouring?")
    sid = await owner.session_id(r2)
    assert (await owner.post(sid, "owner-messages", {"text": "Hi, Ana here: yes we do.", "author": "Ana"})).status_code == 202
    await drain(owner.world, stream_id(SALON, r2))
    types = [e.type for e in await owner.log(r2)]
    assert types.count("HandoffRequested") == 1 and "HandoffNoticeSent" not in types
    quiet = await owner.customer_says(r2, "great, how much?")
    assert quiet.eventId not in replied_to(await owner.log(r2))


@pytest.mark.parametrize(("channel", "ago"), [("whatsapp", timedelta(hours=25)), ("messenger", timedelta(days=8))])
async def test_outside_the_window_without_a_template_an_owner_message_is_refused(owner: Owner, channel: str,
                                                                               ago: timedelta) -> None:
    user = fresh(f"r3-{channel}")
    await owner.customer_says(user, "aveți loc?", channel=channel, ago=ago, reply_to={"to": "+40700000009"})
    sid = await owner.session_id(user)
    before = await owner.log(user)
    refused = await owner.post(sid, "owner-messages", {"text": "Bună!", "author": "Ana"})
    why = refused.json()["error"]
    assert refused.status_code == 422 and "24-hour customer-service window" in why
    assert "no approved template for 'ownerReply'" in why and "settings.templates.ownerReply" in why
    assert await owner.log(user) == before


async def test_a_person_answers_on_messenger_within_7_days_with_the_human_agent_tag(owner: Owner) -> None:
    user = fresh("r3-tag")
    await owner.customer_says(user, "aveți loc?", channel="messenger", ago=timedelta(hours=30), reply_to={"to": "psid-1"})
    sid = await owner.session_id(user)
    sent = await owner.post(sid, "owner-messages", {"text": "Bună!", "author": "Ana"})
    assert sent.status_code == 202, sent.text
    reply = next(e for e in await owner.log(user) if e.type == "OwnerReplied")
    assert reply.payload.send.window == "closed" and reply.payload.send.tag == "HUMAN_AGENT"


async def test_inside_the_window_a_whatsapp_customer_can_be_answered(owner: Owner) -> None:
    r4 = fresh("r4")
    await owner.customer_says(r4, "aveți loc?", channel="whatsapp", ago=timedelta(hours=23), reply_to={"to": "+40700000009"})
    sid = await owner.session_id(r4)
    sent = await owner.post(sid, "owner-messages", {"text": "Da!", "author": "Ana"})
    assert sent.status_code == 202, sent.text


async def test_every_route_checks_the_key_first_and_bad_input_changes_nothing(owner: Owner) -> None:
    r5 = fresh("r5")
    await owner.customer_says(r5, "salut")
    sid = await owner.session_id(r5)
    before = await owner.log(r5)
    for action in ("handoff", "owner-messages", "release"):
        assert (await owner.post(sid, action, b"{garbage", headers={})).status_code == 401
        assert (await owner.post(sid, action, b"{garbage", headers={"Authorization": f"Bearer {SALON}.wrong"})).status_code == 401
        assert (await owner.post(sid, action, {"text": "x", "author": "A"}, business=RESTAURANT)).status_code == 404
    listed = await owner.gw.http.get(f"/v1/businesses/{SALON}/conversations", headers=owner.headers(RESTAURANT))
    assert listed.status_code == 401
    for body in (b"{garbage", {"text": "hi"}, {"text": "", "author": "Ana"}, {"text": "hi", "author": "Ana", "x": "1"},
                 {"text": "hi", "author": 3}):
        assert (await owner.post(sid, "owner-messages", body)).status_code == 400
    assert (await owner.post(sid, "handoff", {"reason": 5})).status_code == 400
    bad_status = await owner.gw.http.get(f"/v1/businesses/{SALON}/conversations?status=open", headers=owner.headers())
    assert bad_status.status_code == 400
    assert await owner.log(r5) == before
    assert (await owner.post("no-such-session", "handoff")).status_code == 404
