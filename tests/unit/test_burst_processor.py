"""The worker's bursts on the in-memory stores, jobs through the keyed executor as the worker runs
them: one reply covering a burst, and a message during the model call answered with the burst."""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.adapters.memory_stores import MemoryDirectory
from agentstream.events import Event, ReplyGenerated, new_event
from agentstream.projections.context import ReplyContext
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.keyed import KeyedExecutor
from tests.unit.test_dead_letters import Worker


class HeldResponder:
    """The offline responder, each call held until `go` is set; `asked` has each call's message."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.asked: list[str] = []
        self.called = asyncio.Event()

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.asked.append(ctx.message)
        self.called.set()
        await self.go.wait()
        answer = await OfflineResponder().answer(ctx)
        return Answer(answer.content, "m", 1, prompt_tokens=10, completion_tokens=5)

    async def close(self) -> None:
        pass


async def _setup(quiet_ms: int, responder: Any) -> tuple[Worker, ConversationProcessor, KeyedExecutor, list[Event]]:
    worker = Worker.in_memory()
    published: list[Event] = []

    async def publish(reply: Event, first: bool = False) -> None:
        published.append(reply)

    processor = ConversationProcessor(worker.store, worker.projections, MemoryDirectory(), responder, publish,
                                      default_quiet_ms=quiet_ms)
    executor = KeyedExecutor()
    processor.bursts.bind(executor.submit)
    return worker, processor, executor, published


async def _deliver(processor: ConversationProcessor, executor: KeyedExecutor, event: Event, acked: list[int]) -> None:
    processor.saw(event.streamId, event.seq, event.type)

    async def job() -> None:
        await processor.handle(event)
        if processor.bursts.take_hold(event.streamId):
            processor.bursts.hold(event.streamId, lambda: acked.append(event.seq))
        else:
            acked.append(event.seq)

    await executor.submit(event.streamId, job)


async def _say(worker: Worker, text: str) -> Event:
    """A customer's message, now (the window is timed from arrival)."""
    event = new_event("MessageReceived", business_id=worker.business, user_id=worker.user, channel="websocket",
                      payload={"content": text, "externalId": text})
    return (await worker.store.append(event)).event


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.02)


async def test_a_burst_gets_one_reply_and_its_first_record_is_acked_only_then() -> None:
    responder = HeldResponder()
    responder.go.set()
    worker, processor, executor, published = await _setup(300, responder)
    acked: list[int] = []
    for n, text in enumerate(("Buna", "as vrea o programare", "joi la 10?")):
        await _deliver(processor, executor, await _say(worker, text), acked)
    await executor.join()
    assert 1 not in acked  # held: the burst is not answered yet
    await asyncio.wait_for(_until(lambda: published), 30)
    await executor.join()
    (reply,) = [e for e in await worker.log() if isinstance(e, ReplyGenerated)]
    assert reply.payload.coversUpToSeq == 3 and len(reply.payload.covers) == 3
    assert responder.asked == ["Buna\nas vrea o programare\njoi la 10?"] and sorted(acked) == [1, 2, 3]


async def test_a_message_during_the_model_call_drops_the_draft_and_the_model_is_asked_with_both() -> None:
    responder = HeldResponder()
    worker, processor, executor, published = await _setup(2000, responder)
    acked: list[int] = []
    await _deliver(processor, executor, await _say(worker, "vreau o programare"), acked)
    await asyncio.wait_for(responder.called.wait(), 30)
    second = await _say(worker, "pentru maine")
    await _deliver(processor, executor, second, acked)  # taken while the model drafts
    responder.go.set()
    await asyncio.wait_for(_until(lambda: published), 30)
    await executor.join()
    (reply,) = [e for e in await worker.log() if isinstance(e, ReplyGenerated)]
    assert responder.asked[-1] == "vreau o programare\npentru maine" and len(responder.asked) == 2
    assert reply.payload.coversUpToSeq == second.seq and reply.payload.droppedUsage.completionTokens == 5
