"""The owner sees and fixes a customer's facts (issue 14): GET/PUT/DELETE
/v1/businesses/{businessId}/users/{userId}/facts[/{kind}] on the gateway served in the test's loop
(test_gateway_auth's harness) over the real local DynamoDB server; the worker's processor
(world.py) folds what the routes append into ai-agent-customer-facts, which GET reads back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.http.common import UNAUTHORIZED
from agentstream.events import Event, new_event, stream_id, utc_now
from agentstream.wiring import gateway_deps
from tests.conftest import isolated_env, settings_from
from tests.integration.test_gateway_auth import RESTAURANT, SALON, Gateway, _serve
from tests.integration.world import CountingResponder, World, drain, new_processor
from tests.services import Endpoints

FACTS = "/v1/businesses/{b}/users/{u}/facts"


@dataclass
class Owner:
    gw: Gateway
    world: World
    ghost_key: str  # a valid key of a business with no business-info item

    def headers(self, business: str = SALON, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gw.keys[business]}", **extra}

    async def customer(self, user: str, text: str = "salut") -> str:
        """A customer of the salon with one message in the log; its stream."""
        event = new_event("MessageReceived", business_id=SALON, user_id=user, channel="websocket",
                          payload={"content": text}, occurred_at=utc_now() - timedelta(minutes=5))
        await self.world.store.append(event)
        return event.streamId

    async def log(self, stream: str) -> list[Event]:
        return await self.world.store.read(stream)

    async def call(self, method: str, user: str, kind: str | None = None, body: Any = None,
                   business: str = SALON, headers: dict[str, str] | None = None) -> httpx.Response:
        path = FACTS.format(b=business, u=user) + (f"/{kind}" if kind else "")
        content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        return await self.gw.http.request(method, path, content=content,
                                          headers=self.headers() if headers is None else headers)


@pytest.fixture(scope="module")
async def owner(endpoints: Endpoints) -> AsyncIterator[Owner]:
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(isolated_env(endpoints), mp)
        await setup(settings, with_topics=False)
        await populate(settings)
        keys = await demo_credentials(settings, [SALON, RESTAURANT, "ghost"])
        async with AsyncExitStack() as stack:
            d = await gateway_deps(stack, settings)
            server, task, port = await _serve(d)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            published: list[Event] = []
            responder = CountingResponder()
            world = World(d.ddb, settings, d.store, new_processor(d.ddb, settings, responder, published), responder, published)
            try:
                yield Owner(Gateway(d, http, port, keys), world, keys.pop("ghost"))
            finally:
                server.should_exit = True
                await task


async def test_every_facts_route_checks_the_key_first(owner: Owner) -> None:
    stream = await owner.customer("u-auth")
    secret = owner.gw.keys[SALON].removeprefix(f"{SALON}.")
    routes = [("GET", None, None), ("PUT", "phone", b"{garbage"), ("DELETE", "phone", b"{garbage")]
    for method, kind, body in routes:
        refusals = {
            "no header": await owner.call(method, "u-auth", kind, body, headers={}),
            "not bearer": await owner.call(method, "u-auth", kind, body, headers={"Authorization": f"Basic {owner.gw.keys[SALON]}"}),
            "wrong key": await owner.call(method, "u-auth", kind, body, headers={"Authorization": f"Bearer {SALON}.wrong"}),
            "old bare key": await owner.call(method, "u-auth", kind, body, headers={"Authorization": f"Bearer {secret}"}),
            "another business's key": await owner.call(method, "u-auth", kind, body, headers=owner.headers(RESTAURANT)),
            "unknown business": await owner.call(method, "u-auth", kind, body, business="nobody",
                                                 headers={"Authorization": f"Bearer nobody.{secret}"}),
            "unknown business, salon key": await owner.call(method, "u-auth", kind, body, business="nobody"),
            "business without info": await owner.call(method, "u-auth", kind, body, business="ghost",
                                                      headers={"Authorization": f"Bearer {owner.ghost_key}"}),
        }
        assert {name: (r.status_code, r.json()) for name, r in refusals.items()} == {
            name: (401, {"error": UNAUTHORIZED}) for name in refusals}, method
        assert all(r.headers["www-authenticate"] == "Bearer" for r in refusals.values())
    assert [e.seq for e in await owner.log(stream)] == [1], "nothing appended"
    assert (await owner.call("PUT", "u-auth", "phone", b"{garbage")).status_code == 400, "the body is read after the key"
    ok = await owner.call("PUT", "u-auth", "phone", {"value": "0722 123 456"})
    assert (ok.status_code, ok.json()["seq"]) == (202, 2), ok.text


async def test_a_bad_kind_or_value_is_400_and_appends_nothing(owner: Owner) -> None:
    stream = await owner.customer("u-bad")
    past = (utc_now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    bad = {
        "unknown kind": ("shoe-size", {"value": "42"}),
        "unparseable phone": ("phone", {"value": "call me maybe"}),
        "too short a phone": ("phone", {"value": "0722"}),
        "email without a domain": ("email", {"value": "ana@"}),
        "email without @": ("email", {"value": "ana.example.ro"}),
        "empty name": ("name", {"value": "  "}),
        "name not a string": ("name", {"value": 42}),
        "over-long name": ("name", {"value": "A" * 81}),
        "language not a code": ("language", {"value": "limba română"}),
        "appointment without a time": ("appointment", {"value": {"service": "tuns"}}),
        "appointment time unreadable": ("appointment", {"value": {"at": "vineri la 10", "service": "tuns"}}),
        "appointment as a bare string": ("appointment", {"value": "2030-01-10T10:00"}),
        "appointment in the past": ("appointment", {"value": {"at": past, "service": "tuns"}}),
        "order without a ref": ("order", {"value": {"id": "A1"}}),
        "no value": ("name", {"name": "Ana"}),
        "extra field": ("name", {"value": "Ana", "source": "model"}),
        "not an object": ("name", ["Ana"]),
        "not JSON": ("name", b"{garbage"),
        "not UTF-8": ("name", b'{"value": "\xff"}'),
    }
    answers = {name: await owner.call("PUT", "u-bad", kind, body) for name, (kind, body) in bad.items()}
    answers["DELETE unknown kind"] = await owner.call("DELETE", "u-bad", "shoe-size")
    answers["bad Idempotency-Key"] = await owner.call("PUT", "u-bad", "name", {"value": "Ana"},
                                                      headers=owner.headers(**{"Idempotency-Key": "k" * 129}))
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 400)
    assert "phone" in answers["unparseable phone"].json()["error"]
    assert [e.type for e in await owner.log(stream)] == ["MessageReceived"], "nothing appended"
    too_big = await owner.call("PUT", "u-bad", "name", {"value": "A" * 20_000})
    assert too_big.status_code == 413
    assert [e.type for e in await owner.log(stream)] == ["MessageReceived"]


async def test_an_unknown_customer_is_404_after_the_key(owner: Owner) -> None:
    answers = {
        "GET": await owner.call("GET", "u-nobody"),
        "PUT": await owner.call("PUT", "u-nobody", "name", {"value": "Ana"}),
        "DELETE": await owner.call("DELETE", "u-nobody", "name"),
    }
    assert {m: (r.status_code, r.json()) for m, r in answers.items()} == dict.fromkeys(answers, (404, {"error": "unknown customer"}))
    assert await owner.log(stream_id(SALON, "u-nobody")) == [], "no stream was started"
    assert (await owner.call("GET", "u-nobody", headers={})).status_code == 401


async def test_a_corrected_fact_is_folded_and_shown_with_the_old_one_superseded(owner: Owner) -> None:
    stream = await owner.customer("u-fix", "Bună, sunt Ana Pop, numărul meu e 0722 123 456")
    await drain(owner.world, stream)
    before = (await owner.call("GET", "u-fix")).json()
    assert {(f["kind"], f["value"], f["source"]) for f in before["facts"]} == {
        ("name", "Ana Pop", "stated"), ("phone", "+40722123456", "stated")}
    put = await owner.call("PUT", "u-fix", "phone", {"value": "0733 111 222"})
    assert put.status_code == 202, put.text
    event = (await owner.log(stream))[-1]
    assert (event.eventId, event.seq, event.type, event.channel) == (put.json()["eventId"], put.json()["seq"], "FactCorrected", "system")
    assert event.payload.model_dump() == {"kind": "phone", "value": "+40733111222", "source": "owner"}
    await drain(owner.world, stream)
    after = (await owner.call("GET", "u-fix")).json()
    phones = [f for f in after["facts"] if f["kind"] == "phone"]
    assert [(f["value"], f["source"], f["sourceEventId"], f["validTo"]) for f in phones] == [
        ("+40733111222", "owner", event.eventId, None)]
    assert [(f["value"], f["source"]) for f in after["superseded"]["phone"]] == [("+40722123456", "stated")]
    assert after["superseded"]["phone"][0]["validTo"] == phones[0]["validFrom"]
    assert ("name", "Ana Pop") in {(f["kind"], f["value"]) for f in after["facts"]}, "other kinds untouched"
    assert (after["businessId"], after["userId"], after["asOfSeq"]) == (SALON, "u-fix", event.seq)
    appointment = await owner.call("PUT", "u-fix", "appointment", {"value": {"at": "2030-01-10T10:00", "service": "tuns"}})
    assert appointment.status_code == 202, appointment.text
    await drain(owner.world, stream)
    booked = [f for f in (await owner.call("GET", "u-fix")).json()["facts"] if f["kind"] == "appointment"]
    assert [(f["value"], f["source"]) for f in booked] == [({"at": "2030-01-10T10:00:00+02:00", "service": "tuns"}, "owner")]


async def test_a_retracted_kind_has_no_current_value(owner: Owner) -> None:
    stream = await owner.customer("u-forget", "Mă numesc Ana Pop, numărul meu e 0722 123 456")
    await drain(owner.world, stream)
    deleted = await owner.call("DELETE", "u-forget", "phone", b"ignored")
    assert deleted.status_code == 202, deleted.text
    event = (await owner.log(stream))[-1]
    assert (event.type, event.eventId, event.payload.model_dump()) == (
        "FactRetracted", deleted.json()["eventId"], {"kind": "phone", "value": None, "source": "owner"})
    await drain(owner.world, stream)
    facts = (await owner.call("GET", "u-forget")).json()
    assert [f["kind"] for f in facts["facts"]] == ["name"]
    assert [f["value"] for f in facts["superseded"]["phone"]] == ["+40722123456"]


async def test_a_retried_request_with_an_idempotency_key_appends_once(owner: Owner) -> None:
    stream = await owner.customer("u-retry")
    key = {"Idempotency-Key": "owner-retry-1"}
    first = await owner.call("PUT", "u-retry", "email", {"value": "Ana@Example.ro"}, headers=owner.headers(**key))
    again = await owner.call("PUT", "u-retry", "email", {"value": "Ana@Example.ro"}, headers=owner.headers(**key))
    assert (first.status_code, again.status_code) == (202, 202), first.text
    assert (again.json()["eventId"], again.json()["seq"]) == (first.json()["eventId"], first.json()["seq"])
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    reused = {
        "another value": await owner.call("PUT", "u-retry", "email", {"value": "ion@example.ro"}, headers=owner.headers(**key)),
        "a DELETE": await owner.call("DELETE", "u-retry", "email", headers=owner.headers(**key)),
    }
    assert {n: r.status_code for n, r in reused.items()} == dict.fromkeys(reused, 422)
    assert [e.type for e in await owner.log(stream)] == ["MessageReceived", "FactCorrected"], "appended once"
    unkeyed = [await owner.call("DELETE", "u-retry", "email") for _ in range(2)]
    assert [r.json()["seq"] for r in unkeyed] == [3, 4], "without a key, each request appends"
    deleted = [await owner.call("DELETE", "u-retry", "email", headers=owner.headers(**{"Idempotency-Key": "del-1"}))
               for _ in range(2)]
    assert [r.json()["seq"] for r in deleted] == [5, 5]
    await drain(owner.world, stream)  # also answers the customer's "salut" (a ReplyGenerated)
    facts = (await owner.call("GET", "u-retry")).json()
    assert (facts["facts"], facts["asOfSeq"]) == ([], (await owner.log(stream))[-1].seq)
    assert [f["source"] for f in facts["superseded"]["email"]] == ["owner"], "one correction, retracted"
