"""The widget on the business's own site: the visitor routes answer CORS for the business's
allowed origins only (others: 403, nothing minted), and the socket checks the page's Origin."""

from __future__ import annotations

import json

import pytest
import websockets

from agentstream.adapters.dynamo.client import to_item
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture

SITE = "https://salon.example"


@pytest.fixture
async def gw(moto_gateway: MotoGateway) -> MotoGateway:
    await moto_gateway.d.ddb.put_item(TableName=moto_gateway.d.settings.tables.business_info, Item=to_item({
        "businessId": moto_gateway.business, "name": "Salon", "businessType": "salon",
        "settings": {"allowedOrigins": [SITE, "http://localhost:*"]}}))
    return moto_gateway


async def test_cors_answers_the_businesss_own_site_only(gw: MotoGateway) -> None:
    url = f"/v1/widget/{gw.business}/visitors"
    preflight = await gw.http.options(url, headers={"Origin": SITE, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == SITE
    minted = await gw.http.post(url, headers={"Origin": "http://localhost:5173"})
    assert minted.status_code == 200 and minted.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"

    for stranger in ("https://evil.example", "http://localhost.evil.example:80", "https://salon.example.evil"):
        assert (await gw.http.options(url, headers={"Origin": stranger})).status_code == 403
        refused = await gw.http.post(url, headers={"Origin": stranger})
        assert refused.status_code == 403 and "token" not in refused.json()
    assert (await gw.http.post(url)).status_code == 200, "no Origin: not a browser's cross-site call"


async def test_the_socket_checks_the_pages_origin(gw: MotoGateway) -> None:
    v = (await gw.http.post(f"/v1/widget/{gw.business}/visitors")).json()
    auth = json.dumps({"type": "auth", "userId": v["userId"], "token": v["token"]})
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}", origin=SITE) as ws:  # type: ignore[arg-type]
        await ws.send(auth)
        await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": "c1"}))
        assert json.loads(await ws.recv())["type"] == "ack"
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}", origin="https://evil.example") as ws:  # type: ignore[arg-type]
        await ws.send(auth)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_one_script_tag_embeds_the_chat_where_the_business_allows(gw: MotoGateway) -> None:
    script = await gw.http.get("/widget.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert "data-business" in script.text and "/?business=" in script.text
    page = await gw.http.get(f"/?business={gw.business}")
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {SITE} http://localhost:*" in csp
    assert "frame-ancestors 'self'" in (await gw.http.get("/?business=nobody")).headers["Content-Security-Policy"]
