"""A worker killed after a reply is in the log and before it is published: the worker that takes
the conversation over publishes it. The projections are written after the publish, so the
inbound is not yet applied for the successor, which finds the reply in the log and publishes it
(without asking the model again). The load test caught this broken when the reply and the
projections went into one transaction: a widget customer never got one reply. On moto."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentstream.adapters.business import BusinessDirectory
from agentstream.adapters.projection_store import ProjectionStore
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
    return ConversationProcessor(worker.store, ProjectionStore(worker.ddb, worker.settings.tables),
                                 BusinessDirectory(worker.ddb, worker.settings.tables), worker.responder, publish)


async def test_a_reply_logged_but_never_published_is_published_by_the_next_worker(worker: Worker) -> None:
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
