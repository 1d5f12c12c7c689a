"""Idle nudges on the real Kafka and ministack: bridge, worker and gateway as processes, a widget
customer who goes quiet gets exactly one nudge frame, recorded as delivered, and a replay of the
conversation verifies clean. The session timer is driven from the test (its own lease name, so
the worker's timer, which ticks once a minute, neither blocks it nor is needed)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from agentstream.bootstrap import load_data, populate
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event
from agentstream.streams.expiry import ExpiryTimer
from agentstream.streams.replay import Scope
from agentstream.wiring import lease_table, new_replayer
from tests.conftest import isolated_env, settings_from
from tests.e2e.stack import running_stack
from tests.services import Endpoints

ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
RUNS = int(os.environ.get("NUDGE_RUNS", "1"))


async def until(condition: Callable[[], Any], timeout: float = 90.0, every: Callable[[], Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        if every is not None:
            await every()
        await asyncio.sleep(0.2)
    return found


def nudging_salon(data: Path) -> Path:
    """The demo data with the salon open around the clock and nudging after 3 seconds."""
    data.mkdir()
    for name in ("businesses.json", "system_instructions.json", "rag_business.json"):
        items = load_data(name)
        for item in items if name == "businesses.json" else ():
            if item["businessId"] == "demo-salon":
                item["openingHours"] = ALWAYS_OPEN
                item["settings"] = {"sessionIdleMinutes": 60, "nudgeAfterMinutes": 0.05,
                                    "nudgeTexts": {"en": "Still there? Ask us anything."}}
        (data / name).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return data


class Widget:
    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[dict[str, Any]] = []

    async def read(self, ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "reply":
                self.frames.append(frame)


async def quiet_customer_gets_one_nudge(base_url: str, port: int, store: EventStore, timer: ExpiryTimer, n: int) -> str:
    visitor = httpx.post(f"{base_url}/v1/widget/demo-salon/visitors").json()
    widget = Widget(f"ws://127.0.0.1:{port}/ws/demo-salon?userId={visitor['userId']}&token={visitor['token']}")
    stream = f"demo-salon#{visitor['userId']}"
    async with websockets.connect(widget.url) as ws:
        reader = asyncio.create_task(widget.read(ws))
        await ws.send(json.dumps({"type": "message", "text": "Hello, do you have a slot tomorrow?", "clientMessageId": f"a{n}"}))
        await until(lambda: len(widget.frames) >= 1)

        async def tick() -> None:
            await timer.round()

        await until(lambda: len(widget.frames) >= 2, every=tick)  # quiet: the timer's nudge arrives
        nudge = widget.frames[1]
        assert nudge["text"] == "Still there? Ask us anything." and nudge["author"] == "ai" and nudge["inReplyTo"] is None
        for _ in range(3):
            await timer.round()  # due no more: nothing appended
        await ws.send(json.dumps({"type": "message", "text": "Yes, at 10?", "clientMessageId": f"b{n}"}))
        await until(lambda: len(widget.frames) >= 3)  # the answer comes after anything sent before it
        reader.cancel()
    events: list[Event] = await store.read(stream)
    nudges = [e for e in events if e.type == "NudgeSent"]
    assert [e.eventId for e in nudges] == [nudge["eventId"]]
    assert [f["eventId"] for f in widget.frames].count(nudge["eventId"]) == 1
    delivered: list[Event] = []
    for _ in range(300):  # the gateway records it right after the frame went out
        if delivered:
            break
        delivered = [e for e in await store.read(stream)
                     if e.type == "ReplyDelivered" and e.payload.replyEventId == nudge["eventId"]]
        await asyncio.sleep(0.2)
    assert len(delivered) == 1
    return visitor["userId"]


@pytest.mark.timeout(300 + 30 * RUNS)
async def test_a_quiet_widget_customer_gets_one_nudge_and_replay_verifies(
        endpoints: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = isolated_env(endpoints)
    with running_stack(env, tmp_path, components=("bridge", "worker", "gateway")) as stack:
        s = settings_from(stack.env, monkeypatch)
        await populate(s, nudging_salon(tmp_path / "data"), only=["business_info"])
        async with dynamodb_client(s) as ddb:
            store = EventStore(ddb, s.tables.events)
            timer = ExpiryTimer(lease_table(ddb, s.tables.leases, "test-timer", 30_000), ProjectionStore(ddb, s.tables), store,
                                lease="timer:nudge-test")
            try:
                for n in range(RUNS):
                    user = await quiet_customer_gets_one_nudge(stack.base_url, stack.port, store, timer, n)
                    report = await new_replayer(ddb, s).run(Scope("demo-salon", user), verify=True)
                    assert report.differences == [], report.differences
            finally:
                await timer.release()


async def test_a_nudge_appended_after_a_handoff_raced_it_is_refused_and_never_published(world: Any, tmp_path: Path) -> None:
    """The timer read the session before the owner's handoff was folded and appended its nudge after
    it: the worker's fold refuses it (recorded on the session, no message) and publishes nothing."""
    from agentstream.events import new_event, utc_now
    from tests.integration.world import drain

    await populate(world.settings, nudging_salon(tmp_path / "data"), only=["business_info"])
    now = utc_now()
    first = new_event("MessageReceived", business_id="demo-salon", user_id="n1", channel="websocket",
                      payload={"content": "Hello, are you open today?", "replyTo": {"socket": "widget"}}, occurred_at=now)
    await world.store.append(first)
    await drain(world, "demo-salon#n1")
    sid = next(e.payload.sessionId for e in await world.store.read("demo-salon#n1") if e.type == "ReplyGenerated")
    await world.store.append(new_event("HandoffRequested", business_id="demo-salon", user_id="n1", channel="system",
                                       payload={"sessionId": sid, "by": "owner", "reason": "VIP"}, occurred_at=now))
    raced = await world.store.append(new_event(
        "NudgeSent", business_id="demo-salon", user_id="n1", channel="websocket", occurred_at=now + timedelta(minutes=1),
        payload={"sessionId": sid, "content": "Still there?", "deliverTo": {"socket": "widget"}}), external_id=f"nudge:{sid}")
    await drain(world, "demo-salon#n1")
    assert raced.event.eventId not in [e.eventId for e in world.published]
    session = await world.processor._writer.projections.session(sid)
    messages = await world.processor._writer.projections.session_messages(sid)
    assert raced.event.eventId not in [m["messageId"] for m in messages]
    assert session is not None and "nudgeDue" not in session
    assert session["nudge"]["status"] == "refused" and session["nudge"]["reason"] == "handed off"
    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "n1"), verify=True)
    assert report.differences == []
