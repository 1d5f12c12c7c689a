"""End to end over a real WebSocket: frame → log → bridge → Kafka → worker → reply frame."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, running_stack
from tests.services import Endpoints


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(isolated_env(endpoints), tmp_path_factory.mktemp("logs")) as running:
        yield running


def visitor(stack: RunningStack, business: str = "demo-salon") -> dict:
    resp = httpx.post(f"{stack.base_url}/v1/widget/{business}/visitors")
    assert resp.status_code == 200, resp.text
    return resp.json()


def ws_url(stack: RunningStack, v: dict, business: str = "demo-salon") -> str:
    return f"ws://127.0.0.1:{stack.port}/ws/{business}?userId={v['userId']}&token={v['token']}"


async def receive(ws: websockets.ClientConnection, kind: str, timeout: float = 60) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == kind:
            return frame


async def test_widget_message_gets_a_contextual_reply(stack: RunningStack) -> None:
    v = visitor(stack)
    async with websockets.connect(ws_url(stack, v)) as ws:
        client_id = str(uuid.uuid4())
        await ws.send(json.dumps({"type": "message", "text": "Buna ziua, la ce ora inchideti azi?", "clientMessageId": client_id}))
        ack = await receive(ws, "ack")
        reply = await receive(ws, "reply")
    assert ack["clientMessageId"] == client_id and ack["eventId"]
    assert reply["inReplyTo"] == ack["eventId"]
    assert reply["sessionId"]
    assert "Salon Ana" in reply["text"] or "salon" in reply["text"].lower()


async def test_resent_frame_is_one_message_and_one_reply(stack: RunningStack) -> None:
    v = visitor(stack)
    client_id = str(uuid.uuid4())
    frame = json.dumps({"type": "message", "text": "Ce servicii aveți?", "clientMessageId": client_id})
    async with websockets.connect(ws_url(stack, v)) as ws:
        await ws.send(frame)
        first = await receive(ws, "ack")
        await ws.send(frame)
        second = await receive(ws, "ack")
        reply = await receive(ws, "reply")
    assert first["eventId"] == second["eventId"] == reply["inReplyTo"]


async def test_bad_frames_get_clear_errors(stack: RunningStack) -> None:
    v = visitor(stack)
    async with websockets.connect(ws_url(stack, v)) as ws:
        await ws.send("not json")
        assert "JSON" in (await receive(ws, "error"))["error"]
        await ws.send(json.dumps({"type": "message", "text": "", "clientMessageId": "x"}))
        assert "text" in (await receive(ws, "error"))["error"]


async def test_bad_token_and_unknown_business_are_refused(stack: RunningStack) -> None:
    v = visitor(stack)
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(ws_url(stack, {**v, "token": v["token"] + "x"})) as ws:
            await asyncio.wait_for(ws.recv(), 5)
    assert httpx.post(f"{stack.base_url}/v1/widget/nobody/visitors").status_code == 404
    other = visitor(stack, "demo-restaurant")
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(ws_url(stack, other, "demo-salon")) as ws:
            await asyncio.wait_for(ws.recv(), 5)
