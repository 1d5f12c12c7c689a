"""The worker's core on the real local DynamoDB server: gaps, duplicates, one reply per
inbound, and replay into empty tables reproducing the live tables item for item."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

from agentstream.adapters.dynamo.client import scan_all
from agentstream.adapters.dynamo.projection_store import ProjectionStore, get_active_session_for_user
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import ReplyGenerated, new_event, utc_now
from agentstream.streams.forget import forget
from agentstream.streams.legacy import import_legacy
from agentstream.streams.replay import Scope
from agentstream.wiring import forget_stores, lease_table, new_replayer
from tests.integration.world import T0, World, drain, inbound, new_processor


async def test_gap_is_filled_from_the_log_and_each_inbound_gets_one_reply(world: World) -> None:
    events = [(await world.store.append(inbound("u1", f"mesaj {i}", i))).event for i in range(3)]
    await world.processor.handle(events[2])  # 1 and 2 never arrived
    memory = await ProjectionStore(world.ddb, world.settings.tables).load_memory("demo-salon", "u1")
    assert memory["lastSeq"] == 3
    replies = [e for e in await world.store.read("demo-salon#u1") if isinstance(e, ReplyGenerated)]
    assert sorted(r.payload.inReplyTo for r in replies) == sorted(e.eventId for e in events)
    for event in events:  # redelivered: nothing new, no model call
        await world.processor.handle(event)
    await drain(world, "demo-salon#u1")
    assert world.responder.calls == 3
    assert len([e for e in await world.store.read("demo-salon#u1") if isinstance(e, ReplyGenerated)]) == 3


async def test_a_restarted_worker_republishes_but_never_asks_the_model_twice(world: World) -> None:
    event = (await world.store.append(inbound("u2", "Ce prețuri aveți?"))).event
    await world.processor.handle(event)
    fresh = new_processor(world.ddb, world.settings, world.responder, world.published)
    # the projection write was lost in the crash: the memory item is gone
    await world.ddb.delete_item(TableName=world.settings.tables.rag_user,
                                Key={"businessId": {"S": "demo-salon"}, "userId": {"S": "u2"}})
    await fresh.handle(event)
    assert world.responder.calls == 1
    assert [p.eventId for p in world.published].count(world.published[0].eventId) == 2


async def test_replay_into_empty_tables_reproduces_the_live_tables(world: World) -> None:
    for user in ("u3", "u4"):
        for i, minutes in enumerate((0, 5, 90, 95)):
            await world.store.append(inbound(user, f"vreau programare {i}", minutes))
        await drain(world, f"demo-salon#{user}")
    t = world.settings.tables
    empty = t.model_copy(update={"sessions": t.sessions + "-r", "messages": t.messages + "-r", "rag_user": t.rag_user + "-r"})
    rebuilt_settings = world.settings.model_copy(update={"tables": empty})
    await ensure_tables(world.ddb, empty, only=[empty.sessions, empty.messages, empty.rag_user])
    report = await new_replayer(world.ddb, rebuilt_settings, fresh=True).run(Scope("demo-salon"))
    assert report.streams == 2 and report.events == 2 * 8
    for live, rebuilt in ((t.sessions, empty.sessions), (t.messages, empty.messages), (t.rag_user, empty.rag_user)):
        key = lambda i: (i.get("sessionId"), i.get("messageId"), i.get("userId"))  # noqa: E731
        assert sorted(await scan_all(world.ddb, TableName=live), key=key) == sorted(await scan_all(world.ddb, TableName=rebuilt), key=key)
    await new_replayer(world.ddb, world.settings).run(Scope("demo-salon"))  # over the live tables: no harm
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon"), verify=True)).differences == []
    session = await get_active_session_for_user(world.ddb, t, "demo-salon", "u3")
    assert session is not None and session["status"] == "active"


async def test_verify_lists_a_tampered_item(world: World) -> None:
    await world.store.append(inbound("u5", "salut"))
    await drain(world, "demo-salon#u5")
    await world.ddb.update_item(TableName=world.settings.tables.rag_user, Key={"businessId": {"S": "demo-salon"}, "userId": {"S": "u5"}},
                                UpdateExpression="SET summary = :s", ExpressionAttributeValues={":s": {"S": "tampered"}})
    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "u5"), verify=True)
    assert len(report.differences) == 1 and "summary" in report.differences[0]


async def test_forget_erases_and_a_late_record_does_not_bring_the_user_back(world: World) -> None:
    event = (await world.store.append(inbound("u6", "șterge-mă"))).event
    await drain(world, "demo-salon#u6")
    report = await forget(forget_stores(world.ddb, world.settings), world.settings, "demo-salon", "u6")
    assert (report.events, report.idempotency_records, report.sessions, report.messages, report.memory) == (2, 1, 1, 2, 1)
    await new_processor(world.ddb, world.settings, world.responder, world.published).handle(event)  # a cold cache
    assert await world.store.read("demo-salon#u6") == []
    assert await ProjectionStore(world.ddb, world.settings.tables).load_memory("demo-salon", "u6") is None
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "u6"))).events == 0


async def test_import_legacy_is_idempotent_and_never_answers_history(world: World) -> None:
    legacy = world.settings.tables.messages + "-legacy"
    t = world.settings.tables.model_copy(update={"messages": legacy})
    await ensure_tables(world.ddb, t, only=[legacy])
    rows = [
        {"messageId": "m1", "sessionId": "s1", "businessId": "demo-salon", "userId": "old", "content": "Bună, aveți loc mâine?", "type": "user", "timestamp": "2025-05-01T09:00:00.000Z", "metadata": {"source": "websocket"}},
        {"messageId": "m2", "sessionId": "s1", "businessId": "demo-salon", "userId": "old", "content": "Da, la 10.", "type": "agent", "timestamp": "2025-05-01T09:00:05.000Z", "metadata": {"source": "websocket"}},
        {"messageId": "m3", "sessionId": "s1", "businessId": "demo-salon", "userId": "old", "content": "Mulțumesc!", "type": "user", "timestamp": "2025-05-01T09:01:00.000Z", "metadata": {"source": "websocket"}},
    ]
    from agentstream.adapters.dynamo.client import to_item
    for row in reversed(rows):
        await world.ddb.put_item(TableName=legacy, Item=to_item(row))
    first = await import_legacy(partial(scan_all, world.ddb), world.store, legacy)
    second = await import_legacy(partial(scan_all, world.ddb), world.store, legacy)
    assert (first.appended, second.appended, second.duplicates) == (3, 0, 3)
    log = await world.store.read("demo-salon#old")
    assert [e.type for e in log] == ["MessageReceived", "ReplyGenerated", "MessageReceived"]
    await drain(world, "demo-salon#old")
    assert world.responder.calls == 0
    memory = await ProjectionStore(world.ddb, world.settings.tables).load_memory("demo-salon", "old")
    assert memory["history"]["totalMessages"] == 3 and memory["history"]["firstSeenAt"].startswith("2025-05-01")


async def test_idle_sessions_expire_through_the_log(world: World) -> None:
    from agentstream.streams.expiry import ExpiryTimer

    old = new_event("MessageReceived", business_id="demo-salon", user_id="u7", channel="websocket", occurred_at=T0,
                    payload={"content": "salut", "replyTo": {"imported": "legacy"}})  # history: no reply, T0 is long past
    await world.store.append(old)
    await drain(world, "demo-salon#u7")
    timer = ExpiryTimer(lease_table(world.ddb, world.settings.tables.leases, "w1"), ProjectionStore(world.ddb, world.settings.tables), world.store)

    assert await timer.round() == 1
    assert await timer.round() == 0, "one expiry per session"
    await drain(world, "demo-salon#u7")
    expired = [e for e in await world.store.read("demo-salon#u7") if e.type == "SessionExpired"]
    assert len(expired) == 1 and expired[0].occurredAt == T0 + timedelta(seconds=3600)
    assert await get_active_session_for_user(world.ddb, world.settings.tables, "demo-salon", "u7") is None


async def test_an_older_replay_never_overwrites_newer_live_state(world: World) -> None:
    """A replay that folded fewer events than the live worker has applied (it read earlier, or
    stops at --as-of) writes nothing older over the live tables."""
    cut = utc_now()
    for i in range(4):
        if i == 2:
            cut = utc_now()
            await asyncio.sleep(0.01)  # event times are kept to the millisecond
        event = new_event("MessageReceived", business_id="demo-salon", user_id="u8", channel="websocket",
                          payload={"content": f"întrebarea {i}"})
        await world.store.append(event)
        await drain(world, "demo-salon#u8")
    tables = (world.settings.tables.sessions, world.settings.tables.messages, world.settings.tables.rag_user)

    async def items(table: str) -> list[dict[str, Any]]:
        return sorted(await scan_all(world.ddb, TableName=table), key=lambda i: (i.get("sessionId", ""), i.get("messageId", "")))

    before = {t: await items(t) for t in tables}
    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "u8", as_of=cut))
    assert report.events == 4, "two turns (message and reply) are up to --as-of"
    assert {t: await items(t) for t in tables} == before
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "u8"), verify=True)).differences == []
