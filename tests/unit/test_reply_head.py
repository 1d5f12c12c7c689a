"""Where the worker appends a reply. A customer who writes again while the model is answering
costs no write lost to that message (an append conflict): for a cached conversation's next
message the log is read after the model answers, so the head is fresh. The log stays gap-free and
in order, and a retry after a failed write never asks the model a second time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.events import ReplyGenerated
from agentstream.metrics import APPEND_CONFLICTS
from agentstream.projections.context import ReplyContext
from agentstream.settings import Settings
from tests.unit.test_dead_letters import Worker


@dataclass
class Responder:
    """Answers offline; while answering the message `interrupt_on`, the customer writes again."""

    worker: Any = None
    interrupt_on: str = ""
    asked: list[str] = field(default_factory=list)

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.asked.append(ctx.message)
        if ctx.message == self.interrupt_on:
            await self.worker.say("Și la ora 10?", 2)
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


def conflicts() -> float:
    return APPEND_CONFLICTS._value.get()  # noqa: SLF001


@pytest.fixture
def worker(moto_ddb: Any, moto_settings: Settings, biz: str) -> Worker:
    responder = Responder()
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}", responder=responder)  # type: ignore[arg-type]
    responder.worker = worker
    return worker


def contents(log: list[Any]) -> list[str]:
    return [e.payload.content if e.type == "MessageReceived" else f"reply to {e.payload.inReplyTo[:8]}" for e in log]


async def test_a_message_sent_while_the_model_answers_costs_no_lost_write(worker: Worker) -> None:
    worker.responder.interrupt_on = "Aveți loc mâine?"  # type: ignore[attr-defined]
    await worker.deliver(await worker.say("Bună ziua", 0))
    second = await worker.say("Aveți loc mâine?", 1)
    before = conflicts()
    await worker.deliver(second)  # the conversation is cached: this is its next event
    assert conflicts() - before == 0, "the reply was appended after the message sent meanwhile, at the first try"

    await worker.drain(second.seq)
    log = await worker.log()
    assert [e.seq for e in log] == list(range(1, len(log) + 1)), "no gap in the conversation"
    first, third = log[0].eventId[:8], log[3].eventId[:8]
    assert contents(log) == ["Bună ziua", f"reply to {first}", "Aveți loc mâine?", "Și la ora 10?",
                             f"reply to {second.eventId[:8]}", f"reply to {third}"]


async def test_a_retry_after_a_failed_write_does_not_ask_the_model_again(
        worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    await worker.deliver(await worker.say("Bună ziua", 0))
    second = await worker.say("Aveți loc mâine?", 1)
    projections = worker.processor._projections  # noqa: SLF001
    write, failures = projections.write, []

    async def throttled_once(*args: Any) -> Any:
        if not failures:
            failures.append(args)
            raise RuntimeError("ProvisionedThroughputExceededException")
        return await write(*args)

    monkeypatch.setattr(projections, "write", throttled_once)
    await worker.deliver(second)  # fails once after the reply is logged, then the retry goes through
    assert failures and worker.responder.asked == ["Bună ziua", "Aveți loc mâine?"]  # type: ignore[attr-defined]
    assert await worker.replies_to() == [(await worker.log())[0].eventId, second.eventId]
    assert await worker.verify() == []
