"""Rate limits: a request over a limit gets 429 with Retry-After (a socket closes with 4429), is
counted on /metrics and changes nothing; the shared limits hold across gateways (counters in
DynamoDB), the per-socket one per socket."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import websockets
from limits import parse
from prometheus_client import REGISTRY

from agentstream.adapters.http.rate_limits import DynamoWindows, Limit, Limiter, RateLimited, GatewayLimits
from agentstream.settings import Settings
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture


def refused(limit: str) -> float:
    return REGISTRY.get_sample_value("agentstream_rate_limited_total", {"limit": limit, "outcome": "refused"}) or 0.0


def tighten(gw: MotoGateway, **limits: str) -> None:
    gw.d.limits = GatewayLimits(gw.d.settings.model_copy(update=limits), gw.d.ddb)


async def test_visitors_past_the_limit_of_an_address_get_429_with_retry_after(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    tighten(gw, limit_visitors_per_address="3/hour")
    before = refused("visitors_per_address")
    minted = [await gw.http.post(f"/v1/widget/{gw.business}/visitors") for _ in range(4)]
    assert [r.status_code for r in minted] == [200, 200, 200, 429]
    assert 1 <= int(minted[-1].headers["Retry-After"]) <= 3600 and "token" not in minted[-1].json()
    assert refused("visitors_per_address") == before + 1


async def test_visitors_past_the_limit_of_a_business_get_429(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    tighten(gw, limit_visitors_per_business="2/hour")
    codes = [(await gw.http.post(f"/v1/widget/{gw.business}/visitors")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    unknown = await gw.http.post("/v1/widget/no-such-business/visitors")
    assert unknown.status_code == 404, "an unknown business counts against no business"


async def test_a_shared_limit_holds_across_gateways(moto_ddb: Any, moto_settings: Settings) -> None:
    limit = Limit("visitors_per_address", parse("3/hour"))
    gateways = [Limiter(DynamoWindows(moto_ddb, moto_settings.tables.rate_limits)) for _ in range(2)]
    for g in (0, 1, 0):
        await gateways[g].hit(limit, "203.0.113.9")
    with pytest.raises(RateLimited) as refusal:
        await gateways[1].hit(limit, "203.0.113.9")
    assert refusal.value.status == 429 and refusal.value.headers["Retry-After"].isdigit()
    await gateways[1].hit(limit, "203.0.113.10")  # another address has its own count
    items = (await moto_ddb.scan(TableName=moto_settings.tables.rate_limits))["Items"]
    assert all("203.0.113" not in str(i) for i in items), "addresses are hashed"
    assert all(int(i["expiresAt"]["N"]) > 0 for i in items)


async def test_a_socket_over_its_frame_rate_is_closed_with_4429_and_the_frame_not_taken(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    tighten(gw, limit_socket_frames="3/minute")
    v = (await gw.http.post(f"/v1/widget/{gw.business}/visitors")).json()
    before = refused("socket_frames")
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}?userId={v['userId']}&token={v['token']}") as ws:
        for i in range(4):
            await ws.send(json.dumps({"type": "message", "text": f"mesaj {i}", "clientMessageId": f"c{i}"}))
        acks = [json.loads(await ws.recv())["type"] for _ in range(3)]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert acks == ["ack"] * 3 and closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    assert [e.payload.content for e in await gw.d.store.read(f"{gw.business}#{v['userId']}")] == ["mesaj 0", "mesaj 1", "mesaj 2"]
    assert refused("socket_frames") == before + 1


async def test_inbox_sign_ins_past_the_limit_get_429_and_no_session(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    tighten(gw, limit_sign_in_per_address="2/minute")
    page = await gw.http.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "name": "Maria", "apiKey": f"{gw.business}.wrong"}
    codes = [(await gw.http.post("/inbox/sign-in", data=form)).status_code for _ in range(2)]
    last = await gw.http.post("/inbox/sign-in", data=form | {"apiKey": gw.api_key}, follow_redirects=False)
    assert codes == [401, 401] and last.status_code == 429 and last.headers["Retry-After"].isdigit()
    assert "set-cookie" not in last.headers, "a refused sign-in signs no one in"
