"""Where the worker appends a reply. A customer who writes again while the model is answering:
the worker's consumer already holds that message, so the reply is appended after it without
first losing a write to it (an append conflict), and the conversation's log stays gap-free and in
order. And a backlog whose replies are logged already never asks the model again. On the in-memory
stores, except where the DynamoDB calls a turn makes are what is asserted (moto)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentstream.adapters.kafka.dlq import Dlq
from agentstream.adapters.kafka.client import event_headers
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.adapters.memory_stores import MemoryProjectionStore
from agentstream.bench.bare_loop import calls_by_operation
from agentstream.events import ReplyGenerated
from agentstream.projections.context import ReplyContext
from agentstream.settings import Settings
from agentstream.streams.keyed import KeyedExecutor
from agentstream.streams.ports import StateStore
from agentstream.streams.worker import applied_before, build_app
from tests.unit.test_dead_letters import PoisonedResponder, Worker
from tests.unit.test_event_store_moto import conflicts_so_far


@dataclass
class InterruptedResponder:
    """Answers offline; on its first call the customer's next message is logged and its record
    reaches the worker's consumer (if `consumed`) before the answer comes back."""

    worker: Any = None
    consumed: bool = True
    calls: list[str] = field(default_factory=list)

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.calls.append(ctx.message)
        if len(self.calls) == 1:
            again = await self.worker.say("Și mâine?", 1)
            if self.consumed:
                assert not applied_before(self.worker.processor, again.streamId.encode(),
                                          event_headers(again.seq, again.type))
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("consumed, lost_writes", [(True, 0), (False, 1)])
async def test_a_reply_goes_after_a_message_the_consumer_already_holds(consumed: bool, lost_writes: int) -> None:
    responder = InterruptedResponder(consumed=consumed)
    worker = Worker.in_memory(responder=responder)
    responder.worker = worker
    first = await worker.say("Bună ziua", 0)
    before = conflicts_so_far()
    await worker.deliver(first)
    assert conflicts_so_far() - before == lost_writes, "the reply lost no write to the message it had heard of"

    await worker.drain(first.seq)
    log = await worker.log()
    assert [e.seq for e in log] == list(range(1, len(log) + 1)), "no gap in the conversation"
    assert [(e.type, getattr(e.payload, "content", None) if e.type == "MessageReceived" else None) for e in log] == [
        ("MessageReceived", "Bună ziua"), ("MessageReceived", "Și mâine?"), ("ReplyGenerated", None),
        ("ReplyGenerated", None)]
    assert [e.payload.inReplyTo for e in log if isinstance(e, ReplyGenerated)] == [first.eventId, log[1].eventId]
    assert worker.published == [(e.eventId, True) for e in log if isinstance(e, ReplyGenerated)], \
        "each reply published once, as just logged"



async def test_a_backlog_whose_replies_are_logged_asks_the_model_nothing() -> None:
    """As a worker meets it with projection tables of its own (a new deployment, projections built
    again) reading the topic from its start: each customer's second inbound is then a cached
    conversation's next event, its reply already in the log behind it."""
    worker = Worker.in_memory()
    for minute, text in enumerate(["Bună ziua", "Aveți loc mâine?", "La ora 10?"]):
        await worker.say(text, minute)
        await worker.drain()
    logged = await worker.log()
    tag = uuid.uuid4().hex[:6]
    fresh = worker.settings.tables.model_copy(update={name: f"{tag}-{name.replace('_', '-')}" for name in (
        "sessions", "messages", "rag_user", "facts", "inbox_views")})
    rebuilt = MemoryProjectionStore(worker.projections.tables, fresh)  # type: ignore[attr-defined]
    asked = PoisonedResponder()
    worker.responder = asked
    worker.processor = worker.new_processor(rebuilt)
    for event in logged:
        await worker.deliver(event)
    assert asked.answered == [] and await worker.log() == logged
    memory = await rebuilt.load_memory(worker.business, worker.user)
    assert memory == await worker.memory(), "the projections were built again, the same"


# ---- a live conversation's next inbound: no read of the log before its reply -----------------


def _spent(before: dict[str, float]) -> dict[str, float]:
    """This process's DynamoDB calls since `before`, by operation."""
    return {op: n - before.get(op, 0.0) for op, n in calls_by_operation().items() if n - before.get(op, 0.0)}


async def test_a_live_conversations_next_inbound_is_answered_without_reading_its_log(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    """The worker read this conversation's log when it met it and has appended its replies since:
    nobody else answers its inbounds, so the next one costs one transaction (the reply's append
    with the projections' write) and no query of the log."""
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")
    await worker.say("Bună ziua", 0)
    await worker.drain()
    second = await worker.say("Aveți loc mâine?", 1)
    before = calls_by_operation()
    await worker.deliver(second)
    assert _spent(before) == {"TransactWriteItems": 1}
    assert await worker.replies_to() == [e.eventId for e in await worker.log() if e.type == "MessageReceived"]


async def test_after_a_rebalance_an_inbound_another_worker_answered_asks_the_model_nothing() -> None:
    """A worker hands a conversation's partition to another, which answers the next inbound, and
    gets it back with that inbound redelivered: it reads the log (the reply is there) rather than
    ask the model again (invariant 3)."""
    worker = Worker.in_memory()
    first = worker.processor
    await worker.say("Bună ziua", 0)
    await worker.drain()
    second = await worker.say("Aveți loc mâine?", 1)
    worker.processor = worker.new_processor()  # the other worker
    first.partitions_revoked()
    await worker.deliver(second)
    worker.processor = first  # the partition comes back, the inbound with it
    await worker.deliver(second)
    assert worker.responder.answered.count(second.eventId) == 1
    assert len(await worker.replies_to()) == 2


class _FailsOnce:
    """The projections' first write fails: before it lands (a throttle, a refused connection) or,
    with `lands`, after (its answer lost with a dropped connection)."""

    def __init__(self, inner: StateStore, lands: bool) -> None:
        self.inner, self.lands, self.failed = inner, lands, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(self, puts: Any, appends: Any = None) -> None:
        if self.failed or self.lands:
            await self.inner.write(puts, appends)
        if not self.failed:
            self.failed = True
            raise ConnectionError("connection reset by peer")


async def test_a_reply_written_with_an_unseen_answer_is_found_on_the_next_try() -> None:
    """The reply and the projections land in one transaction whose answer is lost, so the event
    is tried again: the retry reads the log, finds the reply and asks the model nothing."""
    worker = Worker.in_memory()
    await worker.say("Bună ziua", 0)
    await worker.drain()
    projections = _FailsOnce(worker.projections, lands=True)
    worker.processor._writer.projections = projections  # noqa: SLF001 - the same worker (its cache kept) on a failing table
    second = await worker.say("Aveți loc mâine?", 1)
    await worker.deliver(second)
    assert projections.failed and worker.responder.answered.count(second.eventId) == 1
    assert len(await worker.replies_to()) == 2 and worker.dlq.sent == []


async def test_a_reply_whose_one_transaction_failed_is_appended_first_on_the_next_try(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    """Nothing of the failed transaction landed: the retry appends the answer it already has on
    its own before writing the projections (so projections that cannot be written would not keep
    it from the customer), and asks the model nothing."""
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")
    await worker.say("Bună ziua", 0)
    await worker.drain()
    worker.processor._writer.projections = _FailsOnce(worker.projections, lands=False)  # noqa: SLF001
    second = await worker.say("Aveți loc mâine?", 1)
    before = calls_by_operation()
    await worker.deliver(second)
    assert worker.responder.answered.count(second.eventId) == 1
    assert _spent(before) == {"Query": 1, "TransactWriteItems": 2}, "the log read, the reply's append, the projections"
    reply = (await worker.log())[-1]
    assert reply.type == "ReplyGenerated" and reply.payload.inReplyTo == second.eventId
    assert worker.published[-1] == (reply.eventId, True) and worker.dlq.sent == []


async def test_the_worker_app_forgets_what_it_read_when_its_partitions_are_revoked(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    """Faust's revocation signal reaches the processor."""
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")
    await worker.say("Bună ziua", 0)
    await worker.drain()
    second = await worker.say("Aveți loc mâine?", 1)
    app = build_app(moto_settings, worker.processor, Dlq(None, moto_settings.topic_dlq), KeyedExecutor(10))
    await app.on_partitions_revoked.send(set())
    before = calls_by_operation()
    await worker.deliver(second)
    assert "Query" in _spent(before), "the log was read before answering"
