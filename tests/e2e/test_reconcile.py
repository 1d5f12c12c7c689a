"""The local DynamoDB server restarted with events appended but not yet bridged: the bridge
notices that its checkpoint is gone, reconciliation publishes the missing events from the log,
each gets its reply, and nothing is answered twice."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.local.services import LocalHome, free_port
from agentstream.events import Event, new_event
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, settings_of
from tests.services import ROOT, Endpoints

pytestmark = pytest.mark.soak  # a server restarted under the bridge: `make soak` runs it 20 times in a row

USERS = [f"restart-{n}" for n in range(5)]


def append_messages(stack: RunningStack, turn: int) -> None:
    async def run() -> None:
        s = settings_of(stack)
        async with dynamodb_client(s) as ddb:
            store = EventStore(ddb, s.tables.events)
            for user in USERS:
                event = new_event("MessageReceived", business_id="demo-restaurant", user_id=user, channel="rest",
                                  payload={"content": f"turn {turn}: are you open?", "externalId": f"{user}-{turn}"})
                await store.append(event, external_id=f"rest:{user}-{turn}")

    run_sync(run())


def logs_of(stack: RunningStack) -> dict[str, list[Event]]:
    return {user: log_events(stack.env, f"demo-restaurant#{user}") for user in USERS}


def wait_for_replies(stack: RunningStack, per_user: int, timeout: float = 90.0) -> dict[str, list[Event]]:
    deadline = time.monotonic() + timeout
    while True:
        events = logs_of(stack)
        done = all(sum(e.type == "ReplyGenerated" for e in evs) >= per_user for evs in events.values())
        if done or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_events_lost_by_a_restarted_server_are_reconciled_and_answered_once(endpoints: Endpoints, tmp_path: Path) -> None:
    home = LocalHome(Path(os.environ.get("AGENTSTREAM_HOME", ROOT / ".local")))
    port, state = free_port(), tmp_path / "ministack-state"
    ministack = home.start_ministack(port, state)
    env = isolated_env(endpoints, DYNAMODB_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    try:
        with running_stack(env, tmp_path / "logs", components=("bridge", "worker")) as stack:
            append_messages(stack, 1)
            assert all(sum(e.type == "ReplyGenerated" for e in evs) == 1 for evs in wait_for_replies(stack, 1).values())
            stack.processes["bridge"].stop()
            append_messages(stack, 2)  # in the table and its stream, never bridged
            ministack.stop()
            ministack = home.start_ministack(port, state)  # items kept, stream records gone
            stack.start("bridge")
            events = wait_for_replies(stack, 2)
    finally:
        ministack.stop()
    for user, evs in events.items():
        inbound = [e.eventId for e in evs if e.type == "MessageReceived"]
        answered = Counter(e.payload.inReplyTo for e in evs if e.type == "ReplyGenerated")
        assert len(inbound) == 2, user
        assert answered == Counter(inbound), f"{user}: each inbound answered exactly once, got {answered}"
    bridge_log = (tmp_path / "logs" / "bridge.log").read_text()
    assert "bridge.reconciling" in bridge_log
