"""End to end over a real WebSocket: frame → log → bridge → Kafka → worker → reply frame."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import websockets

from tests.e2e.stack import RunningStack


@pytest.fixture(scope="module")
def stack(shared_stack: RunningStack) -> RunningStack:
    return shared_stack  # the session's (tests/e2e/conftest.py): each test has visitors of its own


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


async def _catch_up(url: str) -> tuple[list[str], str]:
    """The reply eventIds a new socket gets before the ack of a first message (its catch-up: the
    gateway sends that before it reads any frame), and the eventId of that message's own reply."""
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "message", "text": "Multumesc", "clientMessageId": str(uuid.uuid4())}))
        frames = []
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != "ack":
            frames.append(frame["eventId"])
        return frames, (await receive(ws, "reply"))["eventId"]


async def test_a_reconnecting_widget_gets_what_came_after_its_cursor(stack: RunningStack) -> None:
    """A frame written to a socket whose gateway died was recorded delivered yet never read: the
    widget's cursor (its oldest unanswered message) brings it again; without one, it does not come."""
    v = visitor(stack)
    async with websockets.connect(ws_url(stack, v)) as ws:
        await ws.send(json.dumps({"type": "message", "text": "Aveti loc vineri?", "clientMessageId": "c1"}))
        ack = await receive(ws, "ack")
        first = (await receive(ws, "reply"))["eventId"]  # delivered here; suppose it never reached the page
    frames, second = await _catch_up(ws_url(stack, v))
    assert frames == [], "no cursor: only replies not yet delivered"
    frames, third = await _catch_up(ws_url(stack, v) + f"&after={ack['eventId']}")
    assert frames == [first, second], "every reply after the oldest unanswered message, delivered or not"
    assert (await _catch_up(ws_url(stack, v) + f"&after={third}"))[0] == [], "nothing after the last reply"
    assert (await _catch_up(ws_url(stack, v) + "&after=not-an-event"))[0] == [], "an unknown cursor: as without one"


async def test_two_visitors_with_the_same_client_message_id_are_two_messages(stack: RunningStack) -> None:
    """Client message ids are the widget's own (a counter, say): unique per visitor, not per business."""
    frame = json.dumps({"type": "message", "text": "Aveți loc azi?", "clientMessageId": "1"})
    answers = []
    for v in (visitor(stack), visitor(stack)):
        async with websockets.connect(ws_url(stack, v)) as ws:
            await ws.send(frame)
            ack = await receive(ws, "ack")
            answers.append((ack["eventId"], (await receive(ws, "reply"))["inReplyTo"]))
    assert answers[0][0] != answers[1][0] and all(ack == reply for ack, reply in answers)


async def test_bad_frames_get_clear_errors(stack: RunningStack) -> None:
    v = visitor(stack)
    async with websockets.connect(ws_url(stack, v)) as ws:
        await ws.send("not json")
        assert "JSON" in (await receive(ws, "error"))["error"]
        await ws.send(json.dumps({"type": "message", "text": "", "clientMessageId": "x"}))
        assert "text" in (await receive(ws, "error"))["error"]


async def closed_with(url: str) -> tuple[int, str]:
    """The close code and reason of a socket the gateway refuses."""
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_bad_token_and_unknown_business_are_refused_alike(stack: RunningStack) -> None:
    v = visitor(stack)
    other = visitor(stack, "demo-restaurant")
    refused = [await closed_with(ws_url(stack, {**v, "token": v["token"] + "x"})),
               await closed_with(ws_url(stack, other, "demo-salon")),
               await closed_with(ws_url(stack, v, "nobody"))]
    assert refused == [(4403, "bad or expired token")] * 3
    assert httpx.post(f"{stack.base_url}/v1/widget/nobody/visitors").status_code == 404, "the visitor route is public"
    fresh = httpx.post(f"{stack.base_url}/v1/widget/demo-salon/visitors/refresh", headers={"Authorization": f"Bearer {v['token']}"})
    assert fresh.status_code == 200 and fresh.json()["userId"] == v["userId"]


def api(stack: RunningStack, business: str = "demo-salon") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_keys[business]}"}


def answered(stack: RunningStack, user: str, text: str = "Buna ziua, la ce ora inchideti azi?") -> None:
    """A REST customer of this test's own writes once; returns once the reply is in the session."""
    body = {"businessId": "demo-salon", "userId": user, "text": text, "externalId": f"{user}-1"}
    assert httpx.post(f"{stack.base_url}/v1/messages", json=body, headers=api(stack)).status_code == 202
    url = f"{stack.base_url}/v1/businesses/demo-salon/users/{user}/session"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = httpx.get(url, headers=api(stack))
        if session.status_code == 200 and [m["type"] for m in session.json()["lastMessages"]] == ["user", "agent"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{user}: no reply in the session within 60 s")


def test_rest_message_gets_a_session_and_a_reply(stack: RunningStack) -> None:
    body = {"businessId": "demo-salon", "userId": "rest-user-1", "text": "Vreau programare la manichiură", "externalId": "crm-1"}
    first = httpx.post(f"{stack.base_url}/v1/messages", json=body, headers=api(stack))
    again = httpx.post(f"{stack.base_url}/v1/messages", json=body, headers=api(stack))
    assert first.status_code == 202 and again.status_code == 200 and again.json()["duplicate"]
    assert first.json()["eventId"] == again.json()["eventId"]
    url = f"{stack.base_url}/v1/businesses/demo-salon/users/rest-user-1/session"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = httpx.get(url, headers=api(stack))
        if session.status_code == 200 and len(session.json()["lastMessages"]) == 2:
            break
        time.sleep(0.2)
    data = session.json()
    assert data["status"] == "active" and [m["type"] for m in data["lastMessages"]] == ["user", "agent"]
    messages = httpx.get(f"{stack.base_url}/v1/sessions/{data['sessionId']}/messages", headers=api(stack)).json()["messages"]
    assert messages[0]["content"] == "Vreau programare la manichiură"
    odd = {**body, "externalId": "crm-2", "text": "x'); DROP TABLE messages;-- <script>alert(1)</script> 😀 مرحبا"}
    assert httpx.post(f"{stack.base_url}/v1/messages", json=odd, headers=api(stack)).status_code == 202
    while time.monotonic() < deadline and len(stored := httpx.get(
            f"{stack.base_url}/v1/sessions/{data['sessionId']}/messages", headers=api(stack)).json()["messages"]) < 3:
        time.sleep(0.2)
    assert stored[2]["content"] == odd["text"], "script, SQL, emoji and right-to-left text are stored verbatim"
    resolved = httpx.post(f"{stack.base_url}/v1/sessions/{data['sessionId']}/resolve", headers=api(stack))
    assert resolved.status_code == 202
    while time.monotonic() < deadline and httpx.get(url, headers=api(stack)).status_code != 404:
        time.sleep(0.2)
    assert httpx.get(url, headers=api(stack)).status_code == 404, "a resolved session is no longer active"


def test_rest_refuses_bad_input_and_other_tenants(stack: RunningStack) -> None:
    url = f"{stack.base_url}/v1/messages"
    good = {"businessId": "demo-salon", "userId": "rest-user-2", "text": "salut", "externalId": "x-1"}
    refused = [httpx.post(url, json=good), httpx.post(url, content=b"{oops", headers={"Authorization": "Bearer wrong"}),
               httpx.post(url, json=good, headers=api(stack, "demo-restaurant")),
               httpx.post(url, json={**good, "businessId": "nobody"}, headers=api(stack)),
               httpx.post(url, content=b"{oops", headers={"Authorization": "Bearer nobody.secret"})]
    assert {(r.status_code, r.text) for r in refused} == {(401, refused[0].text)}, "one and the same 401"
    assert httpx.post(url, content=b"{oops", headers=api(stack)).status_code == 400
    assert httpx.post(url, json={**good, "text": ""}, headers=api(stack)).status_code == 400
    assert httpx.post(url, content=b"x" * (300 * 1024), headers=api(stack)).status_code == 413
    session_url = f"{stack.base_url}/v1/businesses/demo-salon/users/rest-user-2/session"
    assert httpx.get(session_url, headers=api(stack, "demo-restaurant")).status_code == 401


def test_health_metrics_and_widget_page(stack: RunningStack) -> None:
    assert httpx.get(f"{stack.base_url}/healthz").json() == {"status": "ok"}
    metrics = httpx.get(stack.metrics_url).text
    assert "agentstream_events_appended_total" in metrics
    assert httpx.get(f"{stack.base_url}/metrics").status_code == 404, "metrics only on METRICS_PORT"
    page = httpx.get(f"{stack.base_url}/")
    assert page.status_code == 200 and "textContent" in page.text and "<script>" in page.text


def test_status_and_metrics_show_topics_lag_and_dlq(stack: RunningStack) -> None:
    """After a conversation of its own: `agentstream status` and /metrics agree that the worker and
    delivery have caught up and nothing is in the DLQ."""
    answered(stack, f"status-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + 40
    while True:
        done = subprocess.run([sys.executable, "-m", "agentstream.cli", "status"], env={**os.environ, **stack.env},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = dict(re.findall(r"│ (.+?)\s+│ (.+?)\s+│", done.stdout))
        metrics = httpx.get(stack.metrics_url).text
        caught_up = rows.get("worker lag (events)") == "0" and rows.get("delivery lag (replies)") == "0"
        if (caught_up and "agentstream_consumer_lag_records{" in metrics) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert caught_up, done.stdout
    assert int(rows[f"records in {stack.env['TOPIC_EVENTS']}"]) > 0 and rows["DLQ size"] == "0"
    assert any(value.startswith("read by bridge-") for value in rows.values()), done.stdout
    worker_lag = re.search(rf'agentstream_consumer_lag_records{{group="{stack.env["WORKER_GROUP"]}".*}} (\S+)', metrics)
    assert worker_lag and float(worker_lag.group(1)) >= 0, metrics
    assert re.search(r"^agentstream_dlq_records 0\.0$", metrics, re.M), metrics


def test_the_gateway_serves_analytics_of_the_conversations(stack: RunningStack) -> None:
    """Three customers of its own (and whatever else this module sent to demo-salon): every
    message was answered; the analytics say so."""
    for _ in range(3):
        answered(stack, f"analytics-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + 30
    while True:
        figures = httpx.get(f"{stack.base_url}/v1/analytics/demo-salon", headers=api(stack))
        assert figures.status_code == 200, figures.text
        data = figures.json()
        if (data["messages"] > 0 and data["replies"] == data["messages"]) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert data["messages"] >= 3 and data["replies"] == data["messages"], data
    assert data["replyLatencyMs"]["samples"] == data["replies"] and data["replyLatencyMs"]["p95"] >= data["replyLatencyMs"]["p50"]
    assert data["sessions"]["opened"] >= 3 and data["fallbackRate"] == 0
    assert sum(h["messages"] for h in data["messagesPerHour"]) == data["messages"]
    assert httpx.get(f"{stack.base_url}/v1/analytics/demo-salon", headers=api(stack, "demo-restaurant")).status_code == 401


def _cli(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentstream.cli", *args], env={**os.environ, **stack.env},
                          capture_output=True, text=True, timeout=120)


async def test_the_memory_knows_the_customer_and_every_reply_is_explained(stack: RunningStack) -> None:
    """Ana gives her name and phone, then asks for Thursday at 10: the next reply greets her by
    name and restates the request without booking it; the log replays to the same tables, facts
    included, and the reply's prompt is reproduced from the log."""
    v = visitor(stack)
    replies = []
    async with websockets.connect(ws_url(stack, v)) as ws:
        for text in ("Buna ziua, la ce ora inchideti azi?", "Si maine? Ma numesc Ana, telefonul meu e 0722 123 456",
                     "Puteti sa ma programati joi la 10 pentru tuns?"):
            await ws.send(json.dumps({"type": "message", "text": text, "clientMessageId": str(uuid.uuid4())}))
            await receive(ws, "ack")
            replies.append(await receive(ws, "reply"))
    last = replies[-1]["text"]
    assert "Ana" in last and "tuns" in last and "10:00" in last, last
    assert not re.search(r"confirmat|am făcut programarea|booked", last, re.IGNORECASE), last
    assert "numesc" not in last and "telefonul" not in last

    verified = _cli(stack, "replay", "--business", "demo-salon", "--user", v["userId"], "--verify")
    assert verified.returncode == 0 and "no differences" in verified.stderr, verified.stdout + verified.stderr
    explained = json.loads(_cli(stack, "explain", replies[-1]["eventId"], "--json").stdout)
    assert explained["reproduced"] is True
    facts = {f["kind"]: f["value"] for f in explained["context"]["facts"]}
    assert facts["name"] == "Ana" and facts["phone"] == "+40722123456" and facts["appointment"]["service"] == "tuns"
