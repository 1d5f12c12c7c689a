"""What the public port answers to input it cannot take: deeply nested JSON is a 400 (HTTP) or
a close with 1003 (socket), a binary frame a close with 1003, never a traceback in the log; and
it serves no /metrics (those are on METRICS_PORT)."""

from __future__ import annotations

import json
import logging

import pytest
import websockets

from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture

DEEP = "[" * 30_000 + "]" * 30_000  # under the socket's 64 KB frame limit, far over the parser's depth


async def visitor(gw: MotoGateway) -> dict[str, str]:
    return (await gw.http.post(f"/v1/widget/{gw.business}/visitors")).json()


async def test_deeply_nested_json_is_a_400_without_a_traceback(moto_gateway: MotoGateway,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    gw = moto_gateway
    caplog.set_level(logging.INFO)
    answer = await gw.http.post("/v1/messages", content=DEEP, headers={"Authorization": f"Bearer {gw.api_key}"})
    assert answer.status_code == 400 and answer.json() == {"error": "body nested too deeply"}
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert await gw.d.store.read(f"{gw.business}#x") == []


@pytest.mark.parametrize("frame", [b"\x00\x01binary", DEEP], ids=["binary", "nested"])
async def test_a_binary_or_deeply_nested_frame_closes_the_socket_with_1003(moto_gateway: MotoGateway, frame: object,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    gw = moto_gateway
    caplog.set_level(logging.INFO)
    v = await visitor(gw)
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}?userId={v['userId']}&token={v['token']}",
                                  max_size=None) as ws:
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert await gw.d.store.read(f"{gw.business}#{v['userId']}") == []


async def test_a_bad_frame_of_text_is_answered_and_the_socket_stays(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    v = await visitor(gw)
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}?userId={v['userId']}&token={v['token']}") as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["type"] == "error"
        await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": "c1"}))
        assert json.loads(await ws.recv())["type"] == "ack"


async def test_the_public_port_serves_no_metrics(moto_gateway: MotoGateway) -> None:
    assert (await moto_gateway.http.get("/metrics")).status_code == 404
    assert (await moto_gateway.http.get("/healthz")).status_code == 200


async def test_the_token_goes_in_the_first_frame_and_a_socket_without_one_is_refused(moto_gateway: MotoGateway,
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from agentstream.adapters.http import gateway

    gw = moto_gateway
    v = await visitor(gw)
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}") as ws:
        await ws.send(json.dumps({"type": "auth", "userId": v["userId"], "token": v["token"]}))
        await ws.send(json.dumps({"type": "message", "text": "Bună", "clientMessageId": "c1"}))
        assert json.loads(await ws.recv())["type"] == "ack"
    for first in ({"type": "auth", "userId": v["userId"], "token": v["token"] + "x"},
                  {"type": "message", "text": "Bună", "clientMessageId": "c2"}):
        async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}") as ws:
            await ws.send(json.dumps(first))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    monkeypatch.setattr(gateway, "AUTH_FRAME_WAIT_S", 0.2)
    async with websockets.connect(f"{gw.ws_base}/ws/{gw.business}") as ws:  # says nothing
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert [e.payload.content for e in await gw.d.store.read(f"{gw.business}#{v['userId']}")] == ["Bună"]
