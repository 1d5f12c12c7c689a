"""A reply and the projections it changes go into DynamoDB in one transaction when its inbound
is the conversation's head (the usual case); when the log moved first, they go apart, as before.
Either way the log and the projections end as a replay folds them. On moto's DynamoDB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentstream.events import ReplyGenerated
from agentstream.settings import Settings
from tests.unit.test_dead_letters import Worker


@pytest.fixture
async def worker(moto_ddb: Any, moto_settings: Settings, biz: str) -> Worker:
    return Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")


@pytest.fixture
def writes(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The tables of each write (a transaction's, or one put's) the processor makes to the log and
    the projections (not the business data's version history, recorded on a business's first use)."""
    made: list[list[str]] = []
    transact, put = worker.ddb.transact_write_items, worker.ddb.put_item

    async def counted_transact(**kwargs: Any) -> Any:
        made.append([next(iter(i.values()))["TableName"] for i in kwargs["TransactItems"]])
        return await transact(**kwargs)

    async def counted_put(**kwargs: Any) -> Any:
        if kwargs["TableName"] != worker.settings.tables.config_history:
            made.append([kwargs["TableName"]])
        return await put(**kwargs)

    monkeypatch.setattr(worker.ddb, "transact_write_items", counted_transact)
    monkeypatch.setattr(worker.ddb, "put_item", counted_put)
    return made


async def test_an_inbound_at_the_head_is_answered_in_one_write(worker: Worker, writes: list[list[str]]) -> None:
    inbound = await worker.say("Bună ziua, aveți loc mâine?", 0)
    writes.clear()
    await worker.deliver(inbound)
    assert len(writes) == 1, f"one transaction for the reply and its projections, not {writes}"
    t = worker.settings.tables
    assert writes[0][:2] == [t.events, t.events] and {t.rag_user, t.sessions} <= set(writes[0])
    (first, reply) = await worker.log()
    assert isinstance(reply, ReplyGenerated) and reply.seq == inbound.seq + 1 and reply.payload.inReplyTo == inbound.eventId
    assert (await worker.memory())["lastSeq"] == reply.seq
    writes.clear()
    await worker.deliver(reply)  # its own arrival from the topic changes nothing
    assert writes == [] and await worker.verify() == []


async def test_a_message_logged_before_the_reply_is_answered_in_order(worker: Worker, writes: list[list[str]]) -> None:
    """The customer wrote again before the worker answered the first message: no single write
    (the inbound is not the head); both answered in order, and the fold agrees with a replay."""
    first = await worker.say("Bună ziua", 0)
    second = await worker.say("Mai sunteți acolo?", 1)
    await worker.drain()
    assert [e.payload.inReplyTo for e in await worker.log() if isinstance(e, ReplyGenerated)] == [first.eventId, second.eventId]
    assert await worker.verify() == []


async def test_a_message_landing_between_the_read_and_the_write_sends_the_reply_after_it(
        worker: Worker, writes: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The head moved after the worker read it: the one transaction writes nothing, and the reply
    is appended after the customer's new message, the projections written apart."""
    inbound = await worker.say("Bună ziua", 0)
    answer, said = worker.responder.answer, []

    async def customer_writes_meanwhile(ctx: Any) -> Any:
        if not said:  # while the model answers the first message
            said.append(await worker.say("Alo?", 0.5))
        return await answer(ctx)

    monkeypatch.setattr(worker.responder, "answer", customer_writes_meanwhile)
    await worker.deliver(inbound)
    log = await worker.log()
    assert [e.type for e in log] == ["MessageReceived", "MessageReceived", "ReplyGenerated"]
    assert log[2].payload.inReplyTo == inbound.eventId
    await worker.drain(inbound.seq)
    assert await worker.replies_to() == [inbound.eventId, said[0].eventId]
    assert await worker.verify() == []
