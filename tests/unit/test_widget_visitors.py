"""Widget tokens that can be revoked: a refresh rotates the token (the old one stops working,
except that a refresh with the just-replaced token within 60 s gets the same new token), nothing
is issued past the visitor's lifetime, and a revoked visitor's tokens and sockets stop at once."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
import websockets

from agentstream.adapters.http import gateway

from agentstream.adapters.http import visitors
from agentstream.adapters.dynamo.credentials import issue_widget_token
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.signals import Signals, relay_signals
from agentstream.wiring import forget_stores
from tests.unit.gateway_on_moto import MotoGateway, gateway_deps, moto_gateway, serving  # noqa: F401 - the fixture


async def mint(gw: MotoGateway) -> dict[str, Any]:
    return (await gw.http.post(f"/v1/widget/{gw.business}/visitors")).json()


async def refresh(gw: MotoGateway, token: str) -> Any:
    return await gw.http.post(f"/v1/widget/{gw.business}/visitors/refresh", headers={"Authorization": f"Bearer {token}"})


async def socket_code(gw: MotoGateway, user_id: str, token: str) -> int | None:
    """None when the socket takes a message (ack), else the close code it got."""
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}") as ws:
        await ws.send(json.dumps({"type": "auth", "userId": user_id, "token": token}))
        await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": token[-12:]}))
        try:
            return None if json.loads(await ws.recv())["type"] == "ack" else -1
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1


async def test_a_refresh_rotates_the_token_and_a_second_tab_within_60_s_gets_the_same_one(
        moto_gateway: MotoGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = moto_gateway
    v = await mint(gw)
    first = (await refresh(gw, v["token"])).json()
    assert first["userId"] == v["userId"] and first["token"] != v["token"]
    assert await socket_code(gw, v["userId"], v["token"]) == 4403, "the replaced token stops working"
    assert await socket_code(gw, v["userId"], first["token"]) is None
    second_tab = await refresh(gw, v["token"])
    assert second_tab.status_code == 200 and second_tab.json()["token"] == first["token"]

    later = visitors.time.time() + visitors.GRACE_S + 1
    monkeypatch.setattr(gateway.time, "time", lambda: later)
    assert (await refresh(gw, v["token"])).status_code == 401, "past the grace the old token gets nothing"
    assert (await refresh(gw, first["token"])).status_code == 200


async def test_nothing_is_issued_past_the_visitors_lifetime(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    v = await mint(gw)
    lifetime = gw.d.visitors.lifetime_s  # type: ignore[union-attr]
    old = int(visitors.time.time()) - lifetime - 1
    await gw.d.ddb.update_item(TableName=gw.d.settings.tables.widget_visitors,
                               Key=to_item({"businessId": gw.business, "userId": v["userId"]}),
                               UpdateExpression="SET createdAt = :c", ExpressionAttributeValues=to_item({":c": old}))
    assert (await refresh(gw, v["token"])).status_code == 401
    assert await socket_code(gw, v["userId"], v["token"]) == 4403


async def test_a_revoked_visitor_is_refused_everywhere_and_its_socket_closed(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    v = await mint(gw)
    api = {"Authorization": f"Bearer {gw.api_key}"}
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}") as ws:
        await ws.send(json.dumps({"type": "auth", "userId": v["userId"], "token": v["token"]}))
        await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": "c1"}))
        assert json.loads(await ws.recv())["type"] == "ack"
        assert (await gw.http.post(f"/v1/widget/{gw.business}/visitors/{v['userId']}/revoke")).status_code == 401
        assert (await gw.http.post(f"/v1/widget/{gw.business}/visitors/{v['userId']}/revoke", headers=api)).status_code == 204
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert (await refresh(gw, v["token"])).status_code == 401
    assert await socket_code(gw, v["userId"], v["token"]) == 4403
    assert (await gw.http.post(f"/v1/widget/{gw.business}/visitors/v-nobody/revoke", headers=api)).status_code == 404


class TopicConsumer:
    """`agent.signals.v1` between two gateways, in memory: what one sends the other reads."""

    def __init__(self) -> None:
        self.records: asyncio.Queue[SimpleNamespace] = asyncio.Queue()

    async def send(self, key: bytes, value: bytes) -> None:
        self.records.put_nowait(SimpleNamespace(key=key, value=value))

    async def getmany(self, timeout_ms: int) -> dict[str, list[SimpleNamespace]]:
        try:
            return {"signals-0": [await asyncio.wait_for(self.records.get(), timeout_ms / 1000)]}
        except asyncio.TimeoutError:
            return {}


async def test_a_revoked_visitors_socket_on_another_gateway_closes_too(moto_gateway: MotoGateway) -> None:
    gw, topic, stop = moto_gateway, TopicConsumer(), asyncio.Event()
    other = gateway_deps(gw.d.ddb, gw.d.settings)  # a second gateway on the same tables
    gw.d.signals = Signals(topic.send)
    relay = asyncio.create_task(relay_signals(topic, other.hub, stop))
    v = await mint(gw)
    try:
        async with serving(other) as base, websockets.connect(f"{base.replace('http', 'ws')}/ws/{gw.business}") as ws:
            await ws.send(json.dumps({"type": "auth", "userId": v["userId"], "token": v["token"]}))
            await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": "c1"}))
            assert json.loads(await ws.recv())["type"] == "ack"
            revoked = await gw.http.post(f"/v1/widget/{gw.business}/visitors/{v['userId']}/revoke",
                                         headers={"Authorization": f"Bearer {gw.api_key}"})
            assert revoked.status_code == 204
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
    finally:
        stop.set()
        await relay
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_token_from_before_records_is_refreshed_into_one(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    keys = await gw.d.credentials.widget_keys(gw.business)
    legacy, _ = issue_widget_token(keys, gw.business, "v-legacy", 3600)
    assert await socket_code(gw, "v-legacy", legacy) is None, "still accepted while it lasts"
    fresh = await refresh(gw, legacy)
    assert fresh.status_code == 200 and fresh.json()["userId"] == "v-legacy"
    assert await gw.d.visitors.get(gw.business, "v-legacy") is not None  # type: ignore[union-attr]


async def test_forget_erases_the_visitors_record(moto_gateway: MotoGateway) -> None:
    from agentstream.streams.forget import forget

    gw = moto_gateway
    v = await mint(gw)
    report = await forget(forget_stores(gw.d.ddb, gw.d.settings), gw.d.settings, gw.business, v["userId"])
    assert report.items["widget_visitors"] == 1
    assert await gw.d.visitors.get(gw.business, v["userId"]) is None  # type: ignore[union-attr]
    assert (await refresh(gw, v["token"])).status_code == 401, "an erased visitor's token gets nothing"


async def test_the_owner_blocks_a_visitor_from_the_inbox(moto_gateway: MotoGateway) -> None:
    import re

    from agentstream.adapters.dynamo.client import to_item as item

    gw = moto_gateway
    v = await mint(gw)
    await gw.d.ddb.put_item(TableName=gw.d.settings.tables.sessions, Item=item({
        "sessionId": f"s-{v['userId']}", "businessId": gw.business, "userId": v["userId"], "status": "active",
        "createdAt": "2026-12-07T08:00:00Z", "updatedAt": "2026-12-07T08:00:00Z", "lastMessageAt": "2026-12-07T08:00:00Z",
        "metadata": {"context": {"channel": "websocket"}}}))
    page = await gw.http.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    await gw.http.post("/inbox/sign-in", data={"csrf": csrf, "name": "Maria", "apiKey": gw.api_key})
    convo = await gw.http.get(f"/inbox/conversations/s-{v['userId']}")
    assert 'id="block-visitor"' in convo.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', convo.text).group(1)  # type: ignore[union-attr]
    done = await gw.http.post(f"/inbox/conversations/s-{v['userId']}/block-visitor", data={"csrf": csrf})
    assert done.status_code == 303
    assert (await refresh(gw, v["token"])).status_code == 401
    assert await socket_code(gw, v["userId"], v["token"]) == 4403
