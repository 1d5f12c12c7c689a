"""Work that grows with the work, not with the table: with BULK customers in the log and
their BULK active sessions, the expiry timer, reconciliation of a lost window and forget
read in proportion to the handful they concern. The work is counted through a wrapper
of the DynamoDB client (calls and items read), never timed.

BULK is 5 000 in `make test`: several 1 MB pages of each table, so a scan, a query of a whole
index or a read per customer would read thousands of items where the bounds below allow a few
dozen. `make soak` (AGENTSTREAM_SOAK=1) writes 100 000; AGENTSTREAM_SCALE_BULK sets any size."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from agentstream.bootstrap import populate
from agentstream.adapters.dynamo.client import _client_kwargs, dynamodb_client, put_items, put_log_items
from agentstream.adapters.dynamo.event_store import EventStore, log_item
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.dynamo.tables import EVENTS_BY_INGEST, SESSIONS_DUE, ensure_tables
from agentstream.events import Event, derive_id, new_event, utc_now
from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import CONVERSATION, DUE_SHARDS
from agentstream.registry import PROJECTIONS
from agentstream.settings import Settings
from agentstream.streams.erasure import left_over
from agentstream.streams.expiry import ExpiryTimer
from agentstream.streams.forget import forget
from agentstream.streams.reconcile import reconcile_window
from agentstream.wiring import applied_seqs, forget_stores, lease_table
from tests.conftest import isolated_env, settings_from
from tests.integration.counting import CountingDdb
from tests.integration.world import T0, CountingResponder, World, drain, new_processor
from tests.services import Endpoints
from tests.sizes import size

pytestmark = pytest.mark.timeout(1800)  # writing 100 000 customers (200 000 items, `make soak`) takes minutes
BULK = int(os.environ.get("AGENTSTREAM_SCALE_BULK") or size(5_000, 100_000))
BUSINESS = "demo-salon"
HANDFUL = 5


def _bulk_customer(i: int, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Customer i wrote 30 minutes ago: the log item of its message (appended then) and the
    active session the conversation fold made of it (due in half an hour, so in the due index)."""
    user = f"bulk-{i:06d}"
    at = now - timedelta(minutes=30)
    first = new_event("MessageReceived", business_id=BUSINESS, user_id=user, channel="rest", occurred_at=at,
                      payload={"content": "Aveți loc mâine?"}, event_id=derive_id("bulk", user)).with_seq(1)
    _, puts = CONVERSATION.apply(CONVERSATION.empty(BUSINESS, user), first, FoldConfig(business_type="salon"))
    return log_item(first, at), next(p.item for p in puts if p.table == "sessions")


async def _write_bulk(ddb: Any, settings: Settings) -> None:
    """The log items and the sessions of BULK customers. Only the tables these tests read at
    scale are filled (the events and sessions tables): the customers' memory and message items
    would be written by the same fold, and no path under test reads them."""
    started = time.monotonic()
    now = utc_now()
    log, sessions = zip(*(_bulk_customer(i, now) for i in range(BULK)))
    built = time.monotonic()
    await put_log_items(ddb, settings.tables.events, list(log), concurrency=16)
    await put_items(ddb, settings.tables.sessions, list(sessions), concurrency=16)
    print(f"\nbulk: {len(log) + len(sessions)} items built in {built - started:.0f} s,"
          f" written in {time.monotonic() - built:.0f} s")


@pytest.fixture(scope="module")
async def bulk(endpoints: Endpoints) -> AsyncIterator[Settings]:
    """One set of tables with the BULK customers, shared by this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(isolated_env(endpoints), mp)
        async with dynamodb_client(settings) as ddb:
            await ensure_tables(ddb, settings.tables)
            await populate(settings)
            await _write_bulk(ddb, settings)
        yield settings


@asynccontextmanager
async def patient_client(settings: Settings) -> AsyncIterator[Any]:
    """The product's DynamoDB client with a 10-minute read timeout: ministack answers a Query on
    an index by scanning the whole index (100 000 active sessions under `make soak`), which on a loaded test
    machine takes longer than the product's 30 s. DynamoDB reads only the queried range."""
    kwargs = _client_kwargs(settings)
    kwargs["config"] = kwargs["config"].merge(AioConfig(read_timeout=600))
    async with get_session().create_client("dynamodb", **kwargs) as client:
        yield client


@pytest.fixture
async def scaled(bulk: Settings) -> AsyncIterator[World]:
    """The worker's processor over the bulk tables."""
    async with patient_client(bulk) as ddb:
        published: list[Event] = []
        responder = CountingResponder()
        yield World(ddb, bulk, EventStore(ddb, bulk.tables.events), new_processor(ddb, bulk, responder, published),
                    responder, published)


def old_message(user: str, minutes: float = 0, text: str = "salut") -> Event:
    return new_event("MessageReceived", business_id=BUSINESS, user_id=user, channel="websocket",
                     occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"content": text, "replyTo": {"imported": "legacy"}})  # long past: no reply


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes, headers: Any = ()) -> None:
        self.sent.append((topic, key))

    async def flush(self) -> None:
        pass


async def test_the_expiry_timer_reads_only_the_due_sessions(scaled: World) -> None:
    due = [f"due-{n}" for n in range(HANDFUL)]
    for user in due:
        await scaled.store.append(old_message(user))
        await drain(scaled, f"{BUSINESS}#{user}")
    counting = CountingDdb(scaled.ddb)
    lease = lease_table(counting, scaled.settings.tables.leases, "w1", ttl_ms=600_000)  # held through the test
    timer = ExpiryTimer(lease, ProjectionStore(counting, scaled.settings.tables),
                        EventStore(counting, scaled.settings.tables.events))

    assert await timer.round() == HANDFUL
    print(f"\nexpiry round, {BULK} sessions, {HANDFUL} due: {counting.total_calls} calls, {counting.total_read} items read,"
          f" {dict(counting.calls)}")
    assert counting.indexes[SESSIONS_DUE] == HANDFUL, "the index returns the due sessions and nothing else"
    assert counting.calls["query"] == DUE_SHARDS + HANDFUL  # one Query per shard, one head read per append
    assert "scan" not in counting.calls
    assert counting.total_read <= 2 * HANDFUL + 2 and counting.total_calls <= DUE_SHARDS + 2 * HANDFUL + 2

    for user in due:
        await drain(scaled, f"{BUSINESS}#{user}")
        expired = [e for e in await scaled.store.read(f"{BUSINESS}#{user}") if e.type == "SessionExpired"]
        assert len(expired) == 1 and expired[0].occurredAt == T0 + timedelta(minutes=60)
    counting.reset()
    assert await timer.round() == 0
    assert counting.indexes[SESSIONS_DUE] == 0, "ended sessions left the index"
    assert await lease_table(scaled.ddb, scaled.settings.tables.leases, "w2").get("timer:session-expiry") is not None
    other = ExpiryTimer(lease_table(scaled.ddb, scaled.settings.tables.leases, "w2"),
                        ProjectionStore(scaled.ddb, scaled.settings.tables), scaled.store)
    assert await other.round() is None, "one timer cluster-wide: the lease holder's"


async def test_reconciling_a_lost_window_reads_only_what_was_appended_in_it(scaled: World) -> None:
    since = utc_now()
    behind = [f"late-{n}" for n in range(HANDFUL)]
    caught_up = ["fine-0", "fine-1"]
    for user in behind + caught_up:
        await scaled.store.append(old_message(user))
    for user in caught_up:
        await drain(scaled, f"{BUSINESS}#{user}")
    counting = CountingDdb(scaled.ddb)
    producer = Producer()
    state_tables = [getattr(scaled.settings.tables, p.table) for p in PROJECTIONS]

    report = await reconcile_window(EventStore(counting, scaled.settings.tables.events), applied_seqs(counting, scaled.settings),
                                    producer, "events", since)
    print(f"\nreconcile of a window with 7 appends, {BULK} customers in the log: {counting.total_calls} calls, "
          f"{counting.total_read} items read, {dict(counting.calls)}")
    assert sorted(key.decode() for _, key in producer.sent) == sorted(f"{BUSINESS}#{u}" for u in behind)
    assert (report.streams, report.behind, report.published) == (HANDFUL + 2, HANDFUL, HANDFUL)
    assert counting.indexes[EVENTS_BY_INGEST] == HANDFUL + 2, "the window's events and nothing else"
    assert "scan" not in counting.calls and "get_item" not in counting.calls
    assert counting.calls["batch_get_item"] == len(state_tables), "the positions: one BatchGetItem per projection table"
    assert counting.total_read <= 4 * (HANDFUL + 2) + 10


async def test_forget_reads_what_the_customer_has_not_the_table(scaled: World) -> None:
    user = "gone"
    stream = f"{BUSINESS}#{user}"
    for n in range(3):
        event = new_event("MessageReceived", business_id=BUSINESS, user_id=user, channel="rest",
                          payload={"content": f"mesaj {n}", "externalId": f"gone-{n}"})
        await scaled.store.append(event, external_id=f"rest:gone-{n}")
        await drain(scaled, stream)
    logged = await scaled.store.read(stream)
    assert [e.type for e in logged].count("ReplyGenerated") == 3
    counting = CountingDdb(scaled.ddb)

    report = await forget(forget_stores(counting, scaled.settings), scaled.settings, BUSINESS, user)
    print(f"\nforget of a customer with {len(logged)} events among {BULK} customers: {counting.total_calls} calls, "
          f"{counting.total_read} items read, {dict(counting.calls)}")
    assert report.events == len(logged)
    assert report.idempotency_records == 6, "3 channel ids and 3 reply keys"
    assert "scan" not in counting.calls
    assert counting.total_read <= 10 * len(logged) + 20
    left = await left_over(forget_stores(scaled.ddb, scaled.settings), scaled.settings, BUSINESS, user, report.keys)
    assert set(left.values()) == {0}, left
    assert not await scaled.store.has(BUSINESS, "rest:gone-0")
    assert await ProjectionStore(scaled.ddb, scaled.settings.tables).load_memory(BUSINESS, user) is None
    assert await scaled.store.read(f"{BUSINESS}#bulk-000000"), "nobody else's log is touched"
