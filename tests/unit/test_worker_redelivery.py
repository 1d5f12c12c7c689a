"""A worker that reads a conversation's events again (after a restart, a rebalance or an offset
reset) loads the conversation's state once, not once per event, and changes nothing. On the
in-memory stores."""

from __future__ import annotations

from typing import Any

import pytest

from agentstream.adapters.kafka.client import event_headers, seq_of
from agentstream.streams.worker import applied_before
from tests.unit.test_dead_letters import Worker


@pytest.fixture
def worker() -> Worker:
    return Worker.in_memory()


async def test_a_restarted_worker_loads_a_conversations_state_once_for_its_applied_events(
        worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    for minute, text in enumerate(["Bună ziua", "Aveți loc mâine?", "La ora 10?"]):
        await worker.say(text, minute)
        await worker.drain()
    logged, memory = await worker.log(), await worker.memory()

    worker.processor = worker.new_processor()  # restarted: nothing cached
    projections = worker.projections
    load, loads = projections.load_states, []

    async def counted(*args: Any) -> Any:
        loads.append(args)
        return await load(*args)

    monkeypatch.setattr(projections, "load_states", counted)
    for event in logged:
        await worker.deliver(event)
    assert len(logged) == 6 and len(loads) == 1, "one load for the conversation, then the cache"
    assert await worker.log() == logged and await worker.memory() == memory

    after = await worker.say("Mulțumesc", 4)  # the next new event goes on from the cached state
    await worker.drain(after.seq - 1)
    assert len(loads) == 1
    assert (await worker.replies_to())[-1] == after.eventId


async def test_an_applied_event_is_known_from_its_key_and_headers_alone(worker: Worker) -> None:
    """The bridge puts each event's seq and type in its record's headers: the worker acks an event
    its cache says is applied without parsing it; anything else goes through."""
    await worker.say("Bună ziua", 0)
    await worker.drain()
    (inbound, reply), key = await worker.log(), worker.stream.encode()
    processor = worker.processor
    assert applied_before(processor, key, dict(event_headers(reply.seq, reply.type)))
    assert not applied_before(processor, key, event_headers(inbound.seq, inbound.type)), \
        "a first event always goes through: after `forget` the customer's stream starts again at 1"
    assert not applied_before(processor, key, event_headers(reply.seq + 1, "MessageReceived")), "not applied yet"
    assert not applied_before(processor, key, event_headers(reply.seq, "SkipRevoked")), "a revocation may answer"
    assert not applied_before(processor, b"other#stream", event_headers(1, "MessageReceived")), "not cached here"
    assert not applied_before(worker.new_processor(), key, event_headers(1, "MessageReceived")), "after a restart"
    for headers in (None, [], [("seq", b"x"), ("type", b"MessageReceived")], [("seq", b"1")]):
        assert not applied_before(processor, key, headers)


def test_headers_round_trip() -> None:
    assert seq_of(event_headers(42, "ReplyGenerated")) == (42, "ReplyGenerated")
    assert seq_of([("type", b"\xff"), ("seq", b"1")]) is None
