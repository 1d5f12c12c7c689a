"""Sign-out and an API key rotation end an inbox session at once, on every gateway: the cookie
replayed afterwards is refused and the session's live stream ends."""

from __future__ import annotations

import asyncio
import re

import httpx

from agentstream.adapters.dynamo import credentials as credentials_module
from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.http.gateway import create_app
from agentstream.adapters.http.inbox_session import COOKIE
from tests.unit.gateway_on_moto import MotoGateway, gateway_deps, moto_gateway  # noqa: F401 - the fixture


async def sign_in(http: httpx.AsyncClient, api_key: str) -> tuple[str, str]:
    """(the session cookie, the page's CSRF token) after signing in."""
    page = await http.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = await http.post("/inbox/sign-in", data={"csrf": csrf, "name": "Maria", "apiKey": api_key})
    assert done.status_code == 303, done.text
    listed = await http.get("/inbox")
    assert 'name="apiKey"' not in listed.text, "signed in: the list, not the sign-in form"
    csrf = re.search(r'name="csrf" value="([^"]+)"', listed.text).group(1)  # type: ignore[union-attr]
    return http.cookies[COOKIE], csrf


def signed_in_with(app_client: httpx.AsyncClient, cookie: str) -> asyncio.Future[bool]:
    async def check() -> bool:
        page = await app_client.get("/inbox", headers={"Cookie": f"{COOKIE}={cookie}"})
        return 'name="apiKey"' not in page.text
    return asyncio.ensure_future(check())


async def test_sign_out_ends_the_session_on_every_gateway_and_its_live_stream(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(gateway_deps(gw.d.ddb, gw.d.settings))),
                              base_url="http://other")
    cookie, csrf = await sign_in(gw.http, gw.api_key)
    assert await signed_in_with(other, cookie), "the cookie works on another gateway"

    async with gw.http.stream("GET", "/inbox/live") as stream:
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        out = await gw.http.post("/inbox/sign-out", data={"csrf": csrf})
        assert out.status_code == 303
        rest = [line async for line in lines]  # the stream ends (it would run for minutes otherwise)
    assert "event: signed-out" in rest

    assert not await signed_in_with(gw.http, cookie), "the replayed cookie is refused here"
    assert not await signed_in_with(other, cookie), "and on the other gateway"
    await other.aclose()


async def test_rotating_the_api_key_ends_the_session_at_once(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    cookie, _ = await sign_in(gw.http, gw.api_key)
    rotator = CredentialStore(gw.d.ddb, gw.d.settings.tables.credentials, gw.d.settings.credentials_key)  # the CLI
    await rotator.rotate(gw.business, "rest")
    await asyncio.sleep(credentials_module.REREAD_AFTER_S)  # the gateway reads the key again at most once a second
    assert not await signed_in_with(gw.http, cookie)
