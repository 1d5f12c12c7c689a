"""The worker reads the time through its clock: a reply, and the handoff a customer asks for, are
stamped with the clock's time. On the in-memory stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agentstream.adapters.memory_stores import MemoryDirectory
from agentstream.events import Event
from agentstream.streams.clock import FakeClock
from agentstream.streams.conversations import ConversationProcessor
from tests.unit.test_dead_letters import Worker

AT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


async def test_replies_and_handoffs_are_stamped_with_the_workers_clock() -> None:
    worker, clock = Worker.in_memory(), FakeClock(AT)

    async def publish(reply: Event, first: bool = False) -> None:
        pass

    worker.processor = ConversationProcessor(worker.store, worker.projections, MemoryDirectory(), worker.responder,
                                             publish, clock=clock)
    await worker.say("Bună ziua", 0)
    await worker.drain()
    clock.advance(timedelta(minutes=5))
    await worker.say("vreau să vorbesc cu cineva", 1)
    await worker.drain()
    later = AT + timedelta(minutes=5)
    stamped = [(e.type, e.occurredAt) for e in await worker.log() if e.type != "MessageReceived"]
    assert stamped == [("ReplyGenerated", AT), ("ReplyGenerated", later), ("HandoffRequested", later)]


def test_a_fake_clock_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2031, 5, 6))
