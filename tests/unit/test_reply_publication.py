"""A worker killed after a reply is in the log and before it is published: the worker that takes
the conversation over publishes it, without asking the model again. The reply and the
projections go into one transaction, so for the successor the inbound is applied already: it
meets the inbound again (its offset was not committed), finds the projections stopping right
after it, and publishes the reply logged there. The load test caught a first version of the one
transaction without that: a widget customer never got one reply. On moto."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.memory_stores import MemoryDirectory
from agentstream.events import Event
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor, PublishReply
from tests.unit.test_dead_letters import Worker


class Killed(BaseException):
    """kill -9 at the publish: nothing after it runs."""


@pytest.fixture
async def worker(moto_ddb: Any, moto_settings: Settings, biz: str) -> Worker:
    return Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")


def processor(worker: Worker, publish: PublishReply) -> ConversationProcessor:
    directory = MemoryDirectory() if worker.ddb is None else BusinessDirectory(worker.ddb, worker.settings.tables)
    return ConversationProcessor(worker.store, worker.projections, directory, worker.responder, publish)


async def test_a_reply_logged_but_never_published_is_published_by_the_next_worker(worker: Worker) -> None:
    """On moto: replay's check (`verify`) reads DynamoDB."""
    inbound = await worker.say("Bună ziua, aveți loc mâine?", 0)

    firsts: list[bool] = []

    async def dies(reply: Event, first: bool = False) -> None:
        firsts.append(first)
        raise Killed

    with pytest.raises(Killed):
        await processor(worker, dies).handle(inbound)
    assert [e.type for e in await worker.log()] == ["MessageReceived", "ReplyGenerated"], "logged, not published"

    assert firsts == [True], "a reply just logged is published as its first publication"
    published: list[Event] = []

    async def publish(reply: Event, first: bool = False) -> None:
        published.append(reply)
        firsts.append(first)

    successor = processor(worker, publish)
    for event in await worker.log():  # the inbound again (its offset was not committed), then the reply
        await successor.handle(event)
    assert [(r.type, r.payload.inReplyTo) for r in published] == [("ReplyGenerated", inbound.eventId)]
    assert firsts == [True, False], "found in the log: maybe delivered already, so delivery checks"
    assert worker.responder.answered == [inbound.eventId], "the model was asked once"
    assert await worker.verify() == []


async def test_a_reply_is_published_again_only_for_the_inbound_the_projections_stop_after() -> None:
    """A normal turn publishes its reply once, as just logged; the reply's own record coming back
    publishes nothing. A worker meeting the conversation again (nothing cached) publishes nothing
    for an earlier inbound, and the latest inbound's reply once more, not as a first publication
    (delivery looks for its record): the price of surviving a kill at the publish. In memory."""
    worker = Worker.in_memory()
    first = await worker.say("Bună ziua", 0)
    await worker.drain()
    second = await worker.say("Aveți loc mâine?", 1)
    await worker.drain(first.seq)
    replies = [e.eventId for e in await worker.log() if e.type == "ReplyGenerated"]
    assert worker.published == [(r, True) for r in replies], "each once, from the turn that logged it"

    worker.published.clear()
    worker.processor = worker.new_processor()
    await worker.deliver(first)
    assert worker.published == []
    await worker.deliver(second)
    assert worker.published == [(replies[1], False)]
    assert worker.responder.answered == [first.eventId, second.eventId], "the model was asked once each"
