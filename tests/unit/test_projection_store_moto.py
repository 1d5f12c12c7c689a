"""The projection store on moto's DynamoDB (fast tier): all of an event's items land together,
never an older state over a newer one, and the session look-ups (GSI, or a scan without it).

moto serves every call the store makes: conditional PutItem, TransactWriteItems with
conditions, BatchWriteItem, GetItem, BatchGetItem, Query on a GSI, Scan with a filter.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import (
    AppendRaced,
    ProjectionStore,
    StaleWrite,
    get_active_session_for_user,
    sessions_of_user,
)
from agentstream.events import new_event
from agentstream.projections.base import Put
from agentstream.settings import Settings, Tables


def memory(biz: str, seq: int, version: int = 1, **extra: Any) -> Put:
    return Put("rag_user", {"businessId": biz, "userId": "u1", "lastSeq": seq, "version": version, **extra}, version=version)


def session(biz: str, sid: str, seq: int, status: str = "active", at: str = "2026-05-01T10:00:00.000Z",
            user: str = "u1") -> Put:
    return Put("sessions", {"sessionId": f"{biz}-{sid}", "businessId": biz, "userId": user, "status": status,
                            "lastSeq": seq, "lastMessageAt": at})


def msg(biz: str, seq: int, sid: str = "s1") -> Put:
    return Put("messages", {"messageId": f"{biz}-m{seq}", "sessionId": f"{biz}-{sid}", "businessId": biz, "seq": seq,
                            "timestamp": f"2026-05-01T10:00:{seq:02d}.000Z", "content": f"text {seq}"}, "seq")


@pytest.fixture
def tables(moto_settings: Settings) -> Tables:
    return moto_settings.tables


@pytest.fixture
def store(moto_ddb: Any, tables: Tables) -> ProjectionStore:
    return ProjectionStore(moto_ddb, tables)


async def test_write_lands_every_item_and_reads_them_back(store: ProjectionStore, biz: str) -> None:
    await store.write([memory(biz, 2, turns=["hi"]), session(biz, "s1", 2), msg(biz, 1), msg(biz, 2)])
    assert await store.load_memory(biz, "u1") == memory(biz, 2, turns=["hi"]).item
    assert await store.session(f"{biz}-s1") == session(biz, "s1", 2).item
    assert [m["seq"] for m in await store.session_messages(f"{biz}-s1")] == [1, 2]
    assert await store.load_memory(biz, "nobody") is None and await store.session(f"{biz}-s0") is None
    await store.write([])  # nothing to write: no call


async def test_load_states_reads_each_projections_state_in_one_call(store: ProjectionStore, biz: str) -> None:
    await store.write([memory(biz, 4)])
    projections = [SimpleNamespace(name="conversation", table="rag_user"), SimpleNamespace(name="facts", table="facts")]
    assert await store.load_states(projections, biz, "u1") == {"conversation": memory(biz, 4).item, "facts": None}


async def test_session_messages_in_time_order_and_the_last_few(store: ProjectionStore, biz: str) -> None:
    await store.write([memory(biz, 5), session(biz, "s1", 5), *(msg(biz, n) for n in (3, 1, 5, 2, 4))])
    assert [m["seq"] for m in await store.session_messages(f"{biz}-s1")] == [1, 2, 3, 4, 5]
    assert [m["seq"] for m in await store.session_messages(f"{biz}-s1", limit=2)] == [4, 5]


async def test_an_older_state_is_refused_and_changes_nothing(store: ProjectionStore, biz: str) -> None:
    await store.write([memory(biz, 5, note="new"), session(biz, "s1", 5), msg(biz, 5)])
    with pytest.raises(StaleWrite):
        await store.write([memory(biz, 4, note="old"), session(biz, "s1", 4, status="resolved"), msg(biz, 6)])
    assert (await store.load_memory(biz, "u1"))["note"] == "new"
    assert (await store.session(f"{biz}-s1"))["status"] == "active"
    assert [m["seq"] for m in await store.session_messages(f"{biz}-s1")] == [5]  # not m6: all or nothing
    with pytest.raises(StaleWrite):
        await store.write([memory(biz, 3)])  # a single put, not a transaction
    await store.write([memory(biz, 5, note="again"), session(biz, "s1", 5), msg(biz, 5)])  # the same seq again is fine
    assert (await store.load_memory(biz, "u1"))["note"] == "again"


async def test_an_append_written_with_the_projections_lands_with_them_or_not_at_all(
        moto_ddb: Any, store: ProjectionStore, tables: Tables, biz: str) -> None:
    events = EventStore(moto_ddb, tables.events)
    hello = new_event("MessageReceived", business_id=biz, user_id="u1", channel="sms", payload={"content": "hi"})
    first = await events.append(hello)
    taken = new_event("ReplyGenerated", business_id=biz, user_id="u1", channel="sms",
                      payload={"content": "ok", "inReplyTo": hello.eventId, "sessionId": "", "model": "m"}).with_seq(1)
    with pytest.raises(AppendRaced):  # seq 1 is the customer's
        await store.write([memory(biz, 2, note="with the reply")], events.append_items(taken, "reply:x"))
    assert await store.load_memory(biz, "u1") is None and await events.find(biz, "reply:x") is None

    await store.write([memory(biz, 2, note="with the reply")], events.append_items(taken.with_seq(2), "reply:x"))
    assert [e.seq for e in await events.read(f"{biz}#u1")] == [first.event.seq, 2]
    assert (await store.load_memory(biz, "u1"))["note"] == "with the reply"
    with pytest.raises(AppendRaced):  # the same reply again, at a free seq: its id is recorded
        await store.write([memory(biz, 3)], events.append_items(taken.with_seq(3), "reply:x"))


class _Refusing:
    """A client whose transactions are cancelled for the given reasons (one a transaction item)."""

    def __init__(self, reasons: list[str] | None) -> None:
        self.reasons = reasons

    async def transact_write_items(self, **_: Any) -> None:
        response: dict[str, Any] = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
        if self.reasons is not None:
            response["CancellationReasons"] = [{"Code": r} for r in self.reasons]
        raise ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize("reasons, appended, refusal", [
    (["ConditionalCheckFailed", "None", "None"], True, AppendRaced),
    (["None", "ConditionalCheckFailed", "None"], True, AppendRaced),
    (["None", "None", "ConditionalCheckFailed"], True, StaleWrite),
    (["TransactionConflict", "None", "None"], True, ClientError),  # another write in flight: tried again
    (["None", "None", "ThrottlingError"], True, ClientError),
    (None, True, ClientError),  # no reasons given: the next try reads the log
    (["None", "ConditionalCheckFailed"], False, StaleWrite),
    (None, False, StaleWrite),
])
async def test_a_cancelled_transaction_says_why(tables: Tables, biz: str, reasons: list[str] | None, appended: bool,
                                               refusal: type[Exception]) -> None:
    store = ProjectionStore(_Refusing(reasons), tables)
    appends = [{"Put": {"TableName": tables.events, "Item": {}}}] * 2 if appended else None
    with pytest.raises(refusal):
        await store.write([memory(biz, 2), session(biz, "s1", 2)] if appended else [memory(biz, 2), msg(biz, 2)], appends)


async def test_a_newer_folds_state_replaces_an_older_folds(store: ProjectionStore, biz: str) -> None:
    await store.write([memory(biz, 9, version=1, note="v1")])
    await store.write([memory(biz, 3, version=2, note="v2")])  # refolded by a newer version: replaces it
    assert (await store.load_memory(biz, "u1"))["note"] == "v2"
    with pytest.raises(StaleWrite):
        await store.write([memory(biz, 2, version=2, note="older v2")])


async def test_write_bulk_never_moves_state_backwards(store: ProjectionStore, biz: str) -> None:
    await store.write_bulk([memory(biz, 30, note="new"), session(biz, "s1", 30), *(msg(biz, n) for n in range(1, 31))])
    await store.write_bulk([memory(biz, 10, note="old"), session(biz, "s1", 10, status="resolved"), msg(biz, 10)])
    assert (await store.load_memory(biz, "u1"))["note"] == "new"
    assert (await store.session(f"{biz}-s1"))["status"] == "active"
    assert len(await store.session_messages(f"{biz}-s1")) == 30  # 25 to a batch: two batches


async def test_sessions_of_user_and_the_active_one(store: ProjectionStore, moto_ddb: Any, tables: Tables, biz: str) -> None:
    await store.write([session(biz, "s1", 1, "resolved", "2026-05-01T09:00:00.000Z"),
                       session(biz, "s2", 2, "active", "2026-05-01T11:00:00.000Z"),
                       session(biz, "s3", 3, "active", "2026-05-01T10:00:00.000Z"),
                       session(biz, "x", 3, "active", user="u2")])
    ids = [f"{biz}-s1", f"{biz}-s2", f"{biz}-s3"]
    assert sorted(s["sessionId"] for s in await sessions_of_user(moto_ddb, tables, biz, "u1")) == ids
    assert [s["sessionId"] for s in await sessions_of_user(moto_ddb, tables, biz, "u1", "resolved")] == ids[:1]
    assert (await get_active_session_for_user(moto_ddb, tables, biz, "u1"))["sessionId"] == ids[1]
    assert await get_active_session_for_user(moto_ddb, tables, biz, "nobody") is None


async def test_session_lookup_scans_when_the_gsi_is_missing(moto_ddb: Any, tables: Tables, biz: str) -> None:
    bare = tables.model_copy(update={"sessions": f"{biz}-sessions-without-gsi"})
    await moto_ddb.create_table(TableName=bare.sessions, BillingMode="PAY_PER_REQUEST",
                                KeySchema=[{"AttributeName": "sessionId", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "sessionId", "AttributeType": "S"}])
    await ProjectionStore(moto_ddb, bare).write([session(biz, "s1", 1, "resolved"), session(biz, "s2", 2),
                                                 session(biz, "x", 3, user="u2")])
    assert sorted(s["sessionId"] for s in await sessions_of_user(moto_ddb, bare, biz, "u1")) == [f"{biz}-s1", f"{biz}-s2"]
    assert (await get_active_session_for_user(moto_ddb, bare, biz, "u1"))["sessionId"] == f"{biz}-s2"
