"""Poison events (issue 15): an event that fails every attempt is recorded as `EventSkipped` in
its conversation, the conversation's later events go on without it (also those that arrived
before the skip was recorded), `dlq list` finds it, and `dlq retry` brings it back: the
customer's projections are folded again and the inbound is answered once.

The worker's own pieces (processor, retry policy, skip recorder) run on moto's DynamoDB; the
model is the offline responder, failing on messages that carry the poison word until fixed."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.dead_letters import DeadLetterIndex
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.kafka.client import dumps
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.adapters.memory_stores import MemoryDirectory, MemoryItems, memory_stores
from agentstream.adapters.memory_usage import MemoryUsage
from agentstream.adapters.dynamo.projection_store import ProjectionStore, sessions_of_user
from agentstream.dlq_cli import retry_skipped
from agentstream.events import Event, EventSkipped, ReplyGenerated, SkipRevoked, new_event
from agentstream.projections.context import ReplyContext
from agentstream.projections.skips import skipped_seqs, without_skipped
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.registry import PROJECTIONS
from agentstream.streams.dead_letters import SkipRecorder, retry_outcome, revoke, skipped_events
from agentstream.streams.ports import EventLog, StateStore, VersionedDirectory
from agentstream.streams.replay import Replayer, ReplayStores, Scope
from agentstream.streams.runner import RetryPolicy
from agentstream.streams.worker import process_with_retries
from agentstream.wiring import new_explainer, new_replayer
from tests.sizes import size

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
POISON = "otravă"
NO_WAIT = RetryPolicy(attempts=3, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)


@dataclass
class PoisonedResponder:
    """The offline responder; a message containing the poison word fails every call until fixed."""

    broken: bool = True
    answered: list[str] = field(default_factory=list)
    failures: int = 0

    async def answer(self, ctx: ReplyContext) -> Answer:
        if self.broken and POISON in ctx.message:
            self.failures += 1
            raise RuntimeError("model refused the message")
        self.answered.append(ctx.inbound_event_id)
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


@dataclass
class FakeDlq:
    sent: list[tuple[str, bytes | None, dict[str, Any], str]] = field(default_factory=list)

    async def send(self, stage: str, key: bytes | None, raw: bytes, error: str) -> None:
        import orjson

        self.sent.append((stage, key, orjson.loads(raw), error))


class MemoryDeadLetters:
    """`DeadLetterIndex` in memory."""

    def __init__(self) -> None:
        self.skipped: dict[str, set[str]] = {}

    async def add(self, business_id: str, event_id: str) -> None:
        self.skipped.setdefault(business_id, set()).add(event_id)

    async def remove(self, business_id: str, event_id: str) -> None:
        self.skipped.get(business_id, set()).discard(event_id)

    async def event_ids(self, business_id: str) -> list[str]:
        return sorted(self.skipped.get(business_id, ()))


@dataclass
class Worker:
    """The worker's processing of one record, as `build_app` runs it, without Kafka: on moto's
    DynamoDB (`ddb`, `settings`), or on the in-memory stores (`Worker.in_memory`)."""

    ddb: Any
    settings: Settings
    business: str
    user: str
    responder: PoisonedResponder = field(default_factory=PoisonedResponder)
    dlq: FakeDlq = field(default_factory=FakeDlq)
    published: list[tuple[str, bool]] = field(default_factory=list)  # (eventId, first) put on agent.replies.v1

    def __post_init__(self) -> None:
        self.store: EventLog
        self.projections: StateStore
        if self.ddb is None:
            self.store, self.projections = memory_stores(self.settings.tables)
            self.index: Any = MemoryDeadLetters()
        else:
            self.store = EventStore(self.ddb, self.settings.tables.events)
            self.projections = ProjectionStore(self.ddb, self.settings.tables)
            self.index = DeadLetterIndex(self.ddb, self.settings.tables.events)
        self.processor = self.new_processor()

    @classmethod
    def in_memory(cls, business: str = "b", user: str = "u", **kwargs: Any) -> "Worker":
        return cls(None, Settings(), business, user, **kwargs)

    def new_processor(self, projections: StateStore | None = None) -> ConversationProcessor:
        """A fresh processor (as after a restart: nothing cached), on `projections` if given."""

        async def publish(reply: Event, first: bool = False) -> None:
            self.published.append((reply.eventId, first))

        return ConversationProcessor(self.store, projections or self.projections, self.directory(), self.responder, publish)

    def directory(self) -> VersionedDirectory:
        """The business data the worker reads (none in memory: every business is unknown)."""
        return MemoryDirectory() if self.ddb is None else BusinessDirectory(self.ddb, self.settings.tables)

    @property
    def stream(self) -> str:
        return f"{self.business}#{self.user}"

    async def say(self, text: str, minutes: float) -> Event:
        """The gateway appends a customer's message."""
        event = new_event("MessageReceived", business_id=self.business, user_id=self.user, channel="websocket",
                          payload={"content": text}, occurred_at=T0 + timedelta(minutes=minutes))
        return (await self.store.append(event)).event

    async def deliver(self, event: Event) -> None:
        await process_with_retries(self.processor, self.dlq, event.streamId.encode(), dumps(event.to_json_dict()),
                                   NO_WAIT, SkipRecorder(self.store, self.index))

    async def drain(self, after: int = 0) -> None:
        """Deliver every logged event after `after` in order, as the bridge would, until none is new."""
        while events := await self.store.read(self.stream, after_seq=after):
            for event in events:
                await self.deliver(event)
            after = events[-1].seq

    async def log(self) -> list[Event]:
        return await self.store.read(self.stream)

    async def replies_to(self) -> list[str]:
        return [e.payload.inReplyTo for e in await self.log() if isinstance(e, ReplyGenerated)]

    async def memory(self) -> dict[str, Any]:
        return await self.projections.load_memory(self.business, self.user) or {}

    def replayer(self) -> Replayer:
        if self.ddb is None:
            db = self.store.tables  # type: ignore[attr-defined]
            items = MemoryItems(db)
            return Replayer(ReplayStores(self.store, self.projections, self.directory(), MemoryUsage(db), items),  # type: ignore[arg-type]
                            self.settings)
        return new_replayer(self.ddb, self.settings)

    async def verify(self) -> list[str]:
        report = await self.replayer().run(Scope(self.business, self.user), verify=True)
        return report.differences


@pytest.fixture
async def worker(moto_ddb: Any, moto_settings: Settings, biz: str) -> Worker:
    return Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")


async def test_a_poison_inbound_is_skipped_and_the_message_after_it_is_answered(worker: Worker) -> None:
    first = await worker.say("Bună ziua", 0)
    await worker.drain()
    poison = await worker.say(f"{POISON} aveți loc?", 1)
    after = await worker.say("Aveți loc mâine la 10?", 2)  # logged before the poison's skip is

    await worker.deliver(poison)
    assert worker.responder.failures == NO_WAIT.attempts
    (skip,) = [e for e in await worker.log() if isinstance(e, EventSkipped)]
    assert skip.seq > after.seq and skip.payload.seq == poison.seq and skip.payload.stage == "process"
    assert skip.payload.error == "RuntimeError: model refused the message"
    assert [(s, k, r["eventId"]) for s, k, r, _ in worker.dlq.sent] == [("process", worker.stream.encode(), poison.eventId)]

    await worker.deliver(after)  # the gap before it holds the poison: the log says it is skipped
    assert worker.responder.failures == NO_WAIT.attempts, "the poison is not tried again"
    await worker.drain(after.seq)
    assert await worker.replies_to() == [first.eventId, after.eventId]
    memory = await worker.memory()
    assert memory["lastSeq"] == (await worker.log())[-1].seq
    assert memory["history"]["totalMessages"] == 4  # two inbounds and their replies; not the poison
    assert await worker.verify() == []
    explained = await new_explainer(worker.ddb, worker.settings).explain(after.eventId)
    assert explained.reproduced, "explain folds without the skipped event, as the worker did"
    assert POISON not in str(explained.prompt)
    listed = await skipped_events(worker.store, worker.index, [worker.business])
    assert [(s.eventId, s.seq, s.type, s.stage) for s in listed] == [(poison.eventId, poison.seq, "MessageReceived", "process")]


async def test_duplicates_and_a_redelivered_poison_after_a_restart_change_nothing(worker: Worker) -> None:
    await worker.say("Bună ziua", 0)
    await worker.drain()
    poison = await worker.say(f"{POISON}", 1)
    await worker.drain()
    log_before = await worker.log()
    memory = await worker.memory()

    worker.responder.broken = False  # even fixed, a skipped event is not applied until it is retried
    for processor in (worker.processor, worker.new_processor()):  # cached and after a restart
        worker.processor = processor
        for event in [poison, *log_before]:
            await worker.deliver(event)
    await SkipRecorder(worker.store, worker.index).record(poison, "process", "again")
    assert await worker.log() == log_before, "no second skip, no reply to the skipped event"
    assert await worker.memory() == memory
    assert len(worker.dlq.sent) == 1


async def test_retry_after_the_fix_refolds_and_answers_the_skipped_inbound_once(worker: Worker) -> None:
    poison = await worker.say(f"{POISON} vreau o programare", 0)  # the first message: it opens the session
    await worker.drain()
    later = await worker.say("Mai sunteți acolo?", 1)
    await worker.drain(poison.seq)
    assert await worker.replies_to() == [later.eventId]
    (orphan,) = await sessions_of_user(worker.ddb, worker.settings.tables, worker.business, worker.user)
    assert (await worker.memory())["history"]["totalMessages"] == 2

    async def worker_reads_the_revocation() -> None:
        while not isinstance((await worker.log())[-1], SkipRevoked):
            await asyncio.sleep(0.05)
        revocation = (await worker.log())[-1]
        await worker.drain(revocation.seq - 1)
        await worker.drain(revocation.seq - 1)  # and again (a redelivery): nothing more

    worker.responder.broken = False
    (retried,), _ = await asyncio.gather(retry_skipped(worker.settings, None, poison.eventId, wait_s=60),
                                         worker_reads_the_revocation())
    assert retried.outcome == "applied" and retried.skipped.eventId == poison.eventId
    assert isinstance(await worker.store.get(worker.stream, retried.revocation_seq), SkipRevoked)
    assert await skipped_events(worker.store, worker.index, [worker.business]) == []
    assert sorted(await worker.replies_to()) == sorted([later.eventId, poison.eventId])
    assert worker.responder.answered.count(poison.eventId) == 1
    sessions = await sessions_of_user(worker.ddb, worker.settings.tables, worker.business, worker.user)
    assert len(sessions) == 1 and sessions[0]["sessionId"] != orphan["sessionId"], \
        "the session now opens at the formerly skipped message; the one that opened later is gone"
    assert (await worker.memory())["history"]["totalMessages"] == 4
    assert await worker.verify() == []
    assert (await new_explainer(worker.ddb, worker.settings).explain(poison.eventId)).reproduced
    assert (await new_explainer(worker.ddb, worker.settings).explain(later.eventId)).reproduced
    with pytest.raises(LookupError, match="not skipped"):
        await retry_skipped(worker.settings, None, poison.eventId)


async def test_a_revocation_redelivered_after_a_restart_answers_nothing_more(worker: Worker) -> None:
    await worker.say("Bună ziua", 0)
    poison = await worker.say(f"{POISON}", 1)
    await worker.drain()
    worker.responder.broken = False
    (retried,) = await retry_skipped(worker.settings, worker.business, None)
    assert retried.outcome is None, "no worker has read it yet"
    await worker.drain(retried.revocation_seq - 1)
    log = await worker.log()
    worker.processor = worker.new_processor()
    await worker.drain(retried.revocation_seq - 1)
    assert await worker.log() == log
    assert worker.responder.answered.count(poison.eventId) == 1
    assert await worker.verify() == []


async def test_a_retry_that_fails_again_skips_the_event_again(worker: Worker) -> None:
    poison = await worker.say(f"{POISON}", 0)
    await worker.drain()
    (skipped,) = await skipped_events(worker.store, worker.index, [worker.business])
    revocation = await revoke(worker.store, worker.index, skipped)  # not fixed yet
    await worker.drain(revocation.seq - 1)
    skips = [e for e in await worker.log() if isinstance(e, EventSkipped)]
    assert [s.payload.seq for s in skips] == [poison.seq, poison.seq] and skips[1].seq > revocation.seq
    assert await retry_outcome(worker.store, ProjectionStore(worker.ddb, worker.settings.tables), PROJECTIONS,
                               skipped, revocation) == "skipped again: RuntimeError: model refused the message"
    (again,) = await skipped_events(worker.store, worker.index, [worker.business])
    assert again.skipSeq == skips[1].seq
    assert await worker.replies_to() == []
    assert await worker.verify() == []
    worker.responder.broken = False
    (retried,) = await retry_skipped(worker.settings, worker.business, None)
    await worker.drain(skips[1].seq)
    assert await worker.replies_to() == [poison.eventId]
    assert await worker.verify() == []


# ---- the pure rule -------------------------------------------------------------------------

def _record(kind: str, seq: int, names: int) -> Event:
    payload = {"seq": names} | ({"stage": "process", "error": "x"} if kind == "EventSkipped" else {})
    return new_event(kind, business_id="b", user_id="u", channel="system", payload=payload).with_seq(seq)


@given(st.lists(st.tuples(st.sampled_from(["EventSkipped", "SkipRevoked"]), st.integers(1, 4)), max_size=12),
       st.randoms(use_true_random=False))
@hsettings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_an_event_is_skipped_iff_the_last_record_naming_it_is_a_skip(records: list[tuple[str, int]], rnd: Any) -> None:
    events = [_record(kind, 10 + i, names) for i, (kind, names) in enumerate(records)]
    last = {names: kind for kind, names in records}
    expected = {names for names, kind in last.items() if kind == "EventSkipped"}
    shuffled = list(events)
    rnd.shuffle(shuffled)  # the order they are handed in does not matter: seq order decides
    assert skipped_seqs(shuffled) == expected
    plain = [new_event("MessageReceived", business_id="b", user_id="u", channel="sms", payload={"content": str(s)}).with_seq(s)
             for s in range(1, 5)]
    assert [e.seq for e in without_skipped([*plain, *shuffled]) if e.seq < 10] == [s for s in range(1, 5) if s not in expected]


@given(st.lists(st.integers(0, 3), max_size=6))
@example(deliveries=[2])  # the message after the poison first: the poison fails in its gap
@hsettings(max_examples=size(5, 20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_any_delivery_pattern_skips_only_the_poison_and_ends_in_the_replayed_state(
        moto_ddb: Any, moto_settings: Settings, deliveries: list[int]) -> None:
    """Records lost, repeated, or redelivered after a restart (3: the processor starts afresh),
    in per-key order as Kafka keeps it, before the whole log is delivered in order: whichever
    record meets the poison first (its own, or a later one filling the gap), only the poison is
    skipped, each other message is answered once, and the projections are the log's fold."""
    worker = Worker(moto_ddb, moto_settings, f"b{uuid.uuid4().hex[:8]}", "u")
    logged = [await worker.say("Bună ziua", 0), await worker.say(f"{POISON} 1", 1), await worker.say("Aveți loc mâine?", 2)]
    for i in sorted(deliveries):
        if i == 3:
            worker.processor = worker.new_processor()
        else:
            await worker.deliver(logged[i])
    await worker.drain()
    log = await worker.log()
    assert sorted(await worker.replies_to()) == sorted([logged[0].eventId, logged[2].eventId])
    assert [e.payload.seq for e in log if isinstance(e, EventSkipped)] == [logged[1].seq]
    assert await worker.verify() == []


async def test_an_event_this_build_cannot_read_is_never_retried_skipped_or_dlqd() -> None:
    """An unknown type or schemaVersion in the log behind the record: the worker must stop."""
    from agentstream.events import UnknownSchemaVersion
    from agentstream.streams.stopping import UpgradeNeeded

    class Behind:
        calls = 0

        async def handle(self, event: Event) -> None:
            self.calls += 1
            raise UnknownSchemaVersion("event 'x' (MessageReceived) has schemaVersion 9; this build reads 1: upgrade")

    class NoSkips:
        async def record(self, *args: Any) -> None:
            raise AssertionError("skipped")

    processor, dlq = Behind(), FakeDlq()
    event = new_event("MessageReceived", business_id="b", user_id="u", channel="sms", payload={"content": "x"}).with_seq(2)
    with pytest.raises(UpgradeNeeded, match="schemaVersion 9"):
        await process_with_retries(processor, dlq, b"b#u", dumps(event.to_json_dict()), NO_WAIT, NoSkips())  # type: ignore[arg-type]
    assert processor.calls == 1 and dlq.sent == []
