"""`replay` and `explain` on the in-memory stores, with no server: after the worker's own
processor answered a conversation, `replay --verify` finds nothing to change, names a live item
that went wrong and puts it right; a rebuild into empty tables gives the live items; `explain`
reproduces each reply's prompt."""

from __future__ import annotations

from agentstream.adapters.memory_stores import MemoryItems, MemoryProjectionStore, MemoryTables
from agentstream.adapters.memory_usage import MemoryUsage
from agentstream.events import ReplyGenerated
from agentstream.streams.explain import Explainer
from agentstream.streams.replay import Replayer, ReplayStores, Scope
from tests.unit.test_dead_letters import Worker

PROJECTED = ("sessions", "messages", "rag_user")


async def answered() -> Worker:
    worker = Worker.in_memory(business="salon", user="ana")
    for minutes, text in enumerate(("Bună ziua, sunt Ana Popescu", "Aveți loc mâine la 10?", "Mulțumesc!")):
        await worker.say(text, minutes)
    await worker.drain()
    assert len(await worker.replies_to()) == 3
    return worker


async def test_verify_finds_nothing_after_the_processor_then_names_and_repairs_a_changed_item() -> None:
    worker = await answered()
    assert await worker.verify() == []

    db: MemoryTables = worker.store.tables  # type: ignore[attr-defined]
    memory = db.get(db.names.rag_user, {"businessId": "salon", "userId": "ana"})
    assert memory is not None
    db.put(db.names.rag_user, {**memory, "summary": "a value no fold wrote"})
    (difference,) = await worker.verify()
    assert difference.startswith(f"{db.names.rag_user} ") and "differs in summary" in difference

    report = await worker.replayer().run(Scope("salon", "ana"))
    assert report.streams == 1 and report.events == 6
    assert db.get(db.names.rag_user, {"businessId": "salon", "userId": "ana"}) == memory
    assert await worker.verify() == []


async def test_a_rebuild_into_empty_tables_gives_the_live_items() -> None:
    worker = await answered()
    live: MemoryTables = worker.store.tables  # type: ignore[attr-defined]
    empty = MemoryTables(worker.settings.tables)
    stores = ReplayStores(worker.store, MemoryProjectionStore(empty), worker.directory(), MemoryUsage(empty),  # type: ignore[arg-type]
                          MemoryItems(empty), batches=MemoryItems(empty))
    report = await Replayer(stores, worker.settings).run(Scope("salon"))
    assert report.streams == 1 and report.events == 6 and report.differences == []
    for name in PROJECTED:
        table = getattr(live.names, name)
        key = lambda i: (i.get("sessionId"), i.get("messageId"), i.get("userId"))  # noqa: E731
        assert sorted(empty.rows(table), key=key) == sorted(live.rows(table), key=key), name
        assert live.rows(table), f"{name}: the processor wrote items"


async def test_explain_reproduces_every_reply_on_the_memory_stores() -> None:
    worker = await answered()
    explainer = Explainer(worker.store, worker.directory(), worker.settings)
    replies = [e for e in await worker.log() if isinstance(e, ReplyGenerated)]
    for reply in replies:
        found = await explainer.explain(reply.eventId)
        assert found.reproduced and found.differences() == [], found.differences()
        assert found.inbound.eventId == reply.payload.inReplyTo
