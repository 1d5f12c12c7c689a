"""Authentication first (DESIGN.md invariant 8), on the gateway served by uvicorn in the test's
loop over the real local DynamoDB server: every /v1 route that takes an API key answers a missing
or wrong key, an old bare key, another business's key and an unknown business with one and the
same 401 before it reads the body; webhooks answer an unknown business like a bad signature (403);
the WebSocket closes both with 4403; a visitor's token refreshes for the same userId."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.dynamo.credentials import REFRESH_GRACE_S, issue_widget_token
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.http.gateway import WIDGET_REFUSED, create_app
from agentstream.adapters.http.common import UNAUTHORIZED, Deps
from agentstream.local.services import free_port
from agentstream.adapters.http.webhook_routes import REFUSED
from agentstream.wiring import gateway_deps
from tests.conftest import isolated_env, settings_from
from tests.services import Endpoints

SALON, RESTAURANT = "demo-salon", "demo-restaurant"
META = {"appSecret": "app-secret-1", "verifyToken": "verify-1"}
TWILIO = {"accountSid": "AC1", "authToken": "twilio-token-1", "fromNumber": "+40700000000"}
GMAIL = {"pushToken": "push-1", "accessToken": "gmail-token-1"}


@dataclass
class Gateway:
    d: Deps
    http: httpx.AsyncClient
    port: int
    keys: dict[str, str]  # businessId -> its API key

    def bearer(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def _sessions(d: Deps) -> None:
    """An active session of the salon (s-salon, user u-auth) and one of the restaurant."""
    for sid, business in (("s-salon", SALON), ("s-restaurant", RESTAURANT)):
        item = {"sessionId": sid, "businessId": business, "userId": "u-auth", "status": "active",
                "createdAt": "2026-11-25T08:00:00Z", "updatedAt": "2026-11-25T08:00:00Z", "lastMessageAt": "2026-11-25T08:00:00Z"}
        await d.ddb.put_item(TableName=d.settings.tables.sessions, Item=to_item(item))


async def _serve(d: Deps) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(d), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task, port


@pytest.fixture(scope="module")
async def gw(endpoints: Endpoints) -> AsyncIterator[Gateway]:
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(isolated_env(endpoints), mp)
        await setup(settings, partitions=1)
        await populate(settings)
        keys = await demo_credentials(settings, [SALON, RESTAURANT])
        async with AsyncExitStack() as stack:
            d = await gateway_deps(stack, settings)
            d.analytics = SimpleNamespace(running=True, snapshot=lambda business: {"businessId": business})  # type: ignore[assignment]
            for business in (SALON, "ghost"):  # ghost: secrets stored, but no business-info item
                for provider, values in (("meta", META), ("twilio", TWILIO), ("gmail", GMAIL)):
                    await d.credentials.set(business, provider, values)
            await _sessions(d)
            server, task, port = await _serve(d)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            try:
                yield Gateway(d, http, port, keys)
            finally:
                server.should_exit = True
                await task


# ---- API-key routes -----------------------------------------------------------------------------

# (method, path, good JSON body, status with the salon's key); {b} is the business the caller names
ROUTES = [
    ("POST", "/v1/messages", {"businessId": "{b}", "userId": "u-rest", "text": "salut", "externalId": "auth-1"}, 202),
    ("GET", "/v1/businesses/{b}/users/u-auth/session", None, 200),
    ("GET", "/v1/analytics/{b}", None, 200),
    ("GET", "/v1/sessions/s-salon/messages", None, 200),
    ("POST", "/v1/sessions/s-salon/resolve", None, 202),
]


def _fill(template: Any, business: str) -> Any:
    return json.loads(json.dumps(template).replace("{b}", business)) if template is not None else None


async def _call(gw: Gateway, method: str, path: str, business: str, headers: dict[str, str], body: Any = b"{garbage") -> httpx.Response:
    content = json.dumps(_fill(body, business)).encode() if isinstance(body, dict) else body
    return await gw.http.request(method, path.replace("{b}", business), content=content,
                                 headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("method, path, body, good", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_api_key_is_checked_first_and_names_its_business(gw: Gateway, method: str, path: str, body: Any, good: int) -> None:
    salon_secret = gw.keys[SALON].removeprefix(f"{SALON}.")
    named = body or b"{garbage"  # with a valid key, the business named in the body must be the key's
    refusals = {
        "no header": await _call(gw, method, path, SALON, {}),
        "not bearer": await _call(gw, method, path, SALON, {"Authorization": f"Basic {gw.keys[SALON]}"}),
        "wrong key": await _call(gw, method, path, SALON, gw.bearer(f"{SALON}.wrong")),
        "old bare key": await _call(gw, method, path, SALON, gw.bearer(salon_secret)),
        "unknown business": await _call(gw, method, path, "nobody", gw.bearer(f"nobody.{salon_secret}")),
        "business without info": await _call(gw, method, path, "ghost", gw.bearer(f"ghost.{salon_secret}")),
    }
    if "{b}" in path + json.dumps(body):  # the route names a business besides the key
        refusals["unknown business, salon key"] = await _call(gw, method, path, "nobody", gw.bearer(gw.keys[SALON]), named)
    other = await _call(gw, method, path, SALON, gw.bearer(gw.keys[RESTAURANT]), named)
    if "/v1/sessions/" in path:  # the key is fine; the salon's session is as unknown to it as a missing one
        missing = await _call(gw, method, path.replace("s-salon", "s-missing"), SALON, gw.bearer(gw.keys[RESTAURANT]))
        assert (other.status_code, other.json()) == (missing.status_code, missing.json()) == (404, {"error": "unknown session"})
    else:
        refusals["another business's key"] = other
    assert {name: (r.status_code, r.json()) for name, r in refusals.items()} == {
        name: (401, {"error": UNAUTHORIZED}) for name in refusals}
    assert all(r.headers["www-authenticate"] == "Bearer" for r in refusals.values())
    ok = await _call(gw, method, path, SALON, gw.bearer(gw.keys[SALON]), body)
    assert ok.status_code == good, ok.text


async def test_a_good_key_then_gets_body_errors_and_stays_in_its_business(gw: Gateway) -> None:
    salon = gw.bearer(gw.keys[SALON])
    assert (await _call(gw, "POST", "/v1/messages", SALON, salon)).status_code == 400, "garbage body, after the key"
    restaurant_body = _fill(ROUTES[0][2], RESTAURANT) | {"externalId": "auth-2"}
    assert (await _call(gw, "POST", "/v1/messages", RESTAURANT, salon, restaurant_body)).json() == {"error": UNAUTHORIZED}
    own = await _call(gw, "GET", "/v1/sessions/s-restaurant/messages", RESTAURANT, gw.bearer(gw.keys[RESTAURANT]))
    assert own.status_code == 200 and own.json()["sessionId"] == "s-restaurant"


# ---- webhooks ---------------------------------------------------------------------------------------


def _meta(gw: Gateway, business: str, raw: bytes, secret: str) -> Any:
    sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return gw.http.post(f"/webhooks/meta/{business}", content=raw, headers={"X-Hub-Signature-256": sig})


def _twilio(gw: Gateway, business: str, form: dict[str, str], token: str) -> Any:
    url = f"{gw.d.settings.public_base_url.rstrip('/')}/webhooks/twilio/{business}"
    return gw.http.post(f"/webhooks/twilio/{business}", data=form,
                        headers={"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)})


async def test_webhooks_answer_an_unknown_business_like_a_bad_signature(gw: Gateway) -> None:
    garbage, empty = b"{garbage", json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    form = {"MessageSid": "SM-auth", "From": "+40711111111", "To": "+40700000000", "Body": "salut"}
    subscribe = {"hub.mode": "subscribe", "hub.verify_token": "verify-1", "hub.challenge": "42"}
    cases = {  # name -> (response, expected refusal text, or None for: passed the check)
        "meta bad signature, garbage body": (await _meta(gw, SALON, garbage, "wrong"), REFUSED["meta"]),
        "meta no signature": (await gw.http.post(f"/webhooks/meta/{SALON}", content=garbage), REFUSED["meta"]),
        "meta unknown business": (await _meta(gw, "nobody", garbage, META["appSecret"]), REFUSED["meta"]),
        "meta business without info": (await _meta(gw, "ghost", empty, META["appSecret"]), REFUSED["meta"]),
        "meta subscribe bad token": (await gw.http.get(f"/webhooks/meta/{SALON}", params={**subscribe, "hub.verify_token": "x"}),
                                     REFUSED["meta-subscribe"]),
        "meta subscribe unknown business": (await gw.http.get("/webhooks/meta/nobody", params=subscribe), REFUSED["meta-subscribe"]),
        "twilio bad signature": (await _twilio(gw, SALON, form, "wrong"), REFUSED["twilio"]),
        "twilio unknown business": (await _twilio(gw, "nobody", form, TWILIO["authToken"]), REFUSED["twilio"]),
        "twilio business without info": (await _twilio(gw, "ghost", form, TWILIO["authToken"]), REFUSED["twilio"]),
        "gmail bad token, garbage body": (await gw.http.post(f"/webhooks/gmail/{SALON}?token=x", content=garbage), REFUSED["gmail"]),
        "gmail unknown business": (await gw.http.post("/webhooks/gmail/nobody?token=push-1", content=garbage), REFUSED["gmail"]),
    }
    assert {name: (r.status_code, r.json()) for name, (r, _) in cases.items()} == {
        name: (403, {"error": text}) for name, (_, text) in cases.items()}
    assert (await _meta(gw, SALON, garbage, META["appSecret"])).status_code == 400, "signed garbage: parsed after the check"
    assert (await _meta(gw, SALON, empty, META["appSecret"])).json() == {"received": 0, "statuses": 0}
    assert (await gw.http.get(f"/webhooks/meta/{SALON}", params=subscribe)).text == "42"
    assert (await _twilio(gw, SALON, form, TWILIO["authToken"])).status_code == 200
    assert (await gw.http.post(f"/webhooks/gmail/{SALON}?token=push-1", content=garbage)).status_code == 400
    too_big = await _meta(gw, "nobody", b"x" * (gw.d.settings.max_body_bytes + 1), "any")
    assert too_big.status_code == 413, "the size limit holds before any lookup, for every business alike"


# ---- the widget: WebSocket and token refresh ------------------------------------------------------


async def _visitor(gw: Gateway, business: str = SALON) -> dict[str, Any]:
    resp = await gw.http.post(f"/v1/widget/{business}/visitors")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _socket(gw: Gateway, business: str, user_id: str, token: str) -> tuple[int, str] | str:
    """The close code and reason of a refused socket, or the ack of a message on an accepted one."""
    url = f"ws://127.0.0.1:{gw.port}/ws/{business}?userId={user_id}&token={token}"
    async with websockets.connect(url) as ws:
        try:
            await ws.send(json.dumps({"type": "message", "text": "salut", "clientMessageId": f"c-{user_id[-6:]}-{token[-6:]}"}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    return frame["type"]


async def _refresh(gw: Gateway, business: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await gw.http.post(f"/v1/widget/{business}/visitors/refresh", headers=headers)


async def test_the_socket_closes_an_unknown_business_and_a_bad_token_alike(gw: Gateway) -> None:
    v, other = await _visitor(gw), await _visitor(gw, RESTAURANT)
    keys = await gw.d.credentials.widget_keys(SALON)
    expired, _ = issue_widget_token(keys, SALON, v["userId"], ttl_s=-60)
    refused = {
        "unknown business": await _socket(gw, "nobody", v["userId"], v["token"]),
        "tampered token": await _socket(gw, SALON, v["userId"], v["token"][:-2] + "xx"),
        "another visitor": await _socket(gw, SALON, "v-someone-else", v["token"]),
        "another business's token": await _socket(gw, SALON, other["userId"], other["token"]),
        "expired token": await _socket(gw, SALON, v["userId"], expired),
        "no token": await _socket(gw, SALON, v["userId"], ""),
    }
    assert refused == {name: (4403, "bad or expired token") for name in refused}
    assert await _socket(gw, SALON, v["userId"], v["token"]) == "ack"


async def test_a_visitor_refreshes_an_expired_token_and_keeps_its_user_id(gw: Gateway) -> None:
    v = await _visitor(gw)
    keys = await gw.d.credentials.widget_keys(SALON)
    expired, _ = issue_widget_token(keys, SALON, v["userId"], ttl_s=-3600)
    fresh = await _refresh(gw, SALON, expired)
    assert fresh.status_code == 200 and fresh.json()["userId"] == v["userId"] and fresh.json()["token"] != expired
    assert await _socket(gw, SALON, v["userId"], fresh.json()["token"]) == "ack"
    too_old, _ = issue_widget_token(keys, SALON, v["userId"], ttl_s=-REFRESH_GRACE_S - 60)
    other = await _visitor(gw, RESTAURANT)
    refused = {
        "beyond the grace": await _refresh(gw, SALON, too_old),
        "tampered": await _refresh(gw, SALON, v["token"][:-2] + "xx"),
        "another business's token": await _refresh(gw, SALON, other["token"]),
        "unknown business": await _refresh(gw, "nobody", v["token"]),
        "no header": await _refresh(gw, SALON, None),
    }
    assert {name: (r.status_code, r.json()) for name, r in refused.items()} == {
        name: (401, {"error": WIDGET_REFUSED}) for name in refused}


async def test_a_rotated_widget_key_orphans_no_visitor(gw: Gateway) -> None:
    """Runs last in this module: it rotates the salon's widget key twice."""
    v = await _visitor(gw)
    await gw.d.credentials.rotate(SALON, "widget")
    assert await _socket(gw, SALON, v["userId"], v["token"]) == "ack", "the previous key still verifies"
    fresh = (await _refresh(gw, SALON, v["token"])).json()
    assert fresh["userId"] == v["userId"]
    await gw.d.credentials.rotate(SALON, "widget")
    assert await _socket(gw, SALON, v["userId"], v["token"]) == (4403, "bad or expired token"), "two rotations ago"
    assert (await _refresh(gw, SALON, v["token"])).status_code == 401
    assert await _socket(gw, SALON, v["userId"], fresh["token"]) == "ack", "refreshed after the first rotation"
