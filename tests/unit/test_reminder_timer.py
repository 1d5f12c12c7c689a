"""The reminder timer over the due index: a round reads only the due customers (counted at
100 000 appointments), appends each due reminder once whatever the rounds, decides free text or
template when it appends, and moves with the clock port, never sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream.adapters.memory_stores import MemoryEventStore, MemoryTables
from agentstream.adapters.reminder_index import MemoryDueIndex
from agentstream.events import iso, stream_id
from agentstream.projections.reminders import DUE_SHARDS, due_shard
from agentstream.settings import Tables
from agentstream.streams.clock import FakeClock, FileClock
from agentstream.streams.reminder_timer import ReminderTimer
from tests.sizes import size

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
TEMPLATE = {"name": "reminder_programare", "language": "ro", "params": ["Ana", "02.12.2026 10:00", "tuns"]}


class Always:
    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        pass


class Counting:
    """The due index, counting its calls and the items it answers with."""

    def __init__(self, inner: MemoryDueIndex) -> None:
        self.inner, self.calls, self.items = inner, 0, 0

    async def due(self, shard: int, until: str) -> list[dict[str, Any]]:
        self.calls += 1
        found = await self.inner.due(shard, until)
        self.items += len(found)
        return found


def customer_item(n: int, due: datetime, channel: str = "whatsapp", window_until: datetime | None = None) -> dict[str, Any]:
    """A customer's reminders item as the fold writes it: one appointment, one reminder planned."""
    user = f"c{n:06d}"
    plan = {"minutes": 1440, "dueAt": iso(due), "content": "Vă reamintim programarea (tuns) 02.12.2026 10:00.",
            "template": TEMPLATE, "windowUntil": iso(window_until or T0 - timedelta(days=5))}
    appointment = {"appointmentId": f"a{n}", "status": "confirmed", "startsAt": iso(due + timedelta(days=1)),
                   "channel": channel, "deliverTo": {"phone_number_id": "PN1", "to": user}, "planned": [plan], "sent": {}}
    return {"businessId": "salon", "userId": user, "lastSeq": 3, "version": 1, "appointments": {f"a{n}": appointment},
            "dueShard": due_shard(user), "nextDueAt": iso(due)}


APPOINTMENTS = size(10_000, 100_000)  # `make soak` at full size


def world(items: list[dict[str, Any]]) -> tuple[MemoryTables, MemoryEventStore, Counting]:
    names = Tables()
    tables = MemoryTables(names)
    for item in items:
        tables.put(names.reminders, item)
    return tables, MemoryEventStore(tables), Counting(MemoryDueIndex(tables, names.reminders))


async def test_a_round_reads_only_the_due_customers_among_many_appointments() -> None:
    items = [customer_item(n, T0 + timedelta(minutes=n - 5)) for n in range(APPOINTMENTS)]  # one due a minute from T0 - 5 min
    _, store, index = world(items)
    timer = ReminderTimer(Always(), index, store, FakeClock(T0 - timedelta(minutes=1)))
    assert await timer.round() == 5  # c000000..c000004
    assert index.calls == DUE_SHARDS and index.items == 5
    timer = ReminderTimer(Always(), index, store, FakeClock(T0))
    index.calls = index.items = 0
    assert await timer.round() == 1  # the one newly due; the 5 before are duplicates (their fold has not run here)
    assert index.calls == DUE_SHARDS and index.items == 6
    for n in range(6):
        (event,) = await store.read(stream_id("salon", f"c{n:06d}"))
        assert event.type == "ReminderSent" and event.payload.minutesBefore == 1440
    assert await store.head(stream_id("salon", "c000006")) == 0


async def test_the_clock_moves_and_the_send_is_decided_at_append() -> None:
    closed = customer_item(1, T0 + timedelta(days=6))  # the customer wrote 5 days before T0: closed
    open_ = customer_item(2, T0 + timedelta(days=6), window_until=T0 + timedelta(days=7))  # wrote since
    _, store, index = world([closed, open_])
    clock = FakeClock(T0)
    timer = ReminderTimer(Always(), index, store, clock)
    assert await timer.round() == 0  # not due: nothing appended, no sleep
    clock.advance(timedelta(days=6))
    assert await timer.round() == 2
    (by_template,) = await store.read(stream_id("salon", "c000001"))
    (free_text,) = await store.read(stream_id("salon", "c000002"))
    assert by_template.payload.send.window == "closed" and by_template.payload.send.template.params == TEMPLATE["params"]
    assert free_text.payload.send.window == "open" and free_text.payload.send.template is None
    assert by_template.occurredAt == T0 + timedelta(days=6)


def test_the_file_clock_reads_the_time_a_test_writes_else_the_systems(tmp_path) -> None:
    path = tmp_path / "clock"
    path.write_text("2026-12-08T08:00:00.000Z\n")
    assert FileClock(str(path)).now() == datetime(2026, 12, 8, 8, tzinfo=timezone.utc)
    for unset in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty").write_text("")
        before = datetime.now(timezone.utc)
        now = FileClock(str(unset)).now()
        assert before <= now <= datetime.now(timezone.utc)


async def test_a_round_after_the_appointments_start_records_the_reminder_as_missed_never_sends_it() -> None:
    item = customer_item(1, T0)  # due at T0, the appointment a day later; the timer was down until after it
    _, store, index = world([item])
    timer = ReminderTimer(Always(), index, store, FakeClock(T0 + timedelta(days=1, minutes=5)))
    assert await timer.round() == 1
    (missed,) = await store.read(stream_id("salon", "c000001"))
    assert missed.type == "ReminderMissed" and missed.payload.minutesBefore == 1440
    assert missed.payload.dueAt == iso(T0) and missed.payload.startsAt == iso(T0 + timedelta(days=1))
    assert await timer.round() == 0  # one outcome per reminder, whatever the rounds
    at_start = ReminderTimer(Always(), index, store, FakeClock(T0 + timedelta(days=1)))
    assert await at_start.round() == 0 and len(await store.read(stream_id("salon", "c000001"))) == 1
