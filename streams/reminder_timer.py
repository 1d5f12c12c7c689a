"""The reminder timer: appends ReminderSent for the reminders that are due.

Every worker runs it; the lease `timer:reminders` lets one at a time do the work. A round asks
the due index (the reminders fold's sparse `dueShard-nextDueAt-index`: only customers with a
pending reminder are in it) for the customers due by now, one query per shard, so its cost
follows the reminders due, not the appointments. It reads the time from the clock port (tests
and `CLOCK_FILE` move it), never sleeps past a due time, and only appends: the fold decides
whether a reminder stands (the appointment may have been moved or cancelled meanwhile).
A reminder still planned when its appointment has started (the timer was not running at its
time) is never sent: the round appends `ReminderMissed` for it, which drops it from the plan and
so from the due index.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol

import structlog

from agentstream import idempotency as keys
from agentstream.events import derive_id, iso, new_event
from agentstream.projections import templates
from agentstream.projections.reminders import DUE_SHARDS, due_reminders, missed_reminders, reminder_key
from agentstream.streams.ports import Clock, EventLog
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)
LEASE = "timer:reminders"
EVERY_S = 60.0


class DueIndex(Protocol):
    """The customers of one shard with a reminder due at or before `until` (ISO UTC)."""

    async def due(self, shard: int, until: str) -> list[dict[str, Any]]: ...


class Lease(Protocol):
    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


def reminder_event(item: dict[str, Any], appointment: dict[str, Any], plan: dict[str, Any], now: datetime) -> Any:
    """The ReminderSent a due plan makes, its `send` decided now (free text inside the window, the
    template planned by the fold outside it)."""
    key = reminder_key(appointment["appointmentId"], plan["minutes"], appointment["startsAt"])
    return new_event(
        "ReminderSent", event_id=derive_id("reminder", key), business_id=item["businessId"], user_id=item["userId"],
        channel=appointment["channel"], occurred_at=now,
        payload={"appointmentId": appointment["appointmentId"], "minutesBefore": plan["minutes"],
                 "startsAt": appointment["startsAt"], "content": plan["content"],
                 "deliverTo": dict(appointment.get("deliverTo") or {}),
                 "send": templates.outbound_send(plan.get("windowUntil"), plan.get("template"), now)},
    )


def missed_event(item: dict[str, Any], appointment: dict[str, Any], plan: dict[str, Any], now: datetime) -> Any:
    """The ReminderMissed of a plan whose appointment started before it went out."""
    key = reminder_key(appointment["appointmentId"], plan["minutes"], appointment["startsAt"])
    return new_event(
        "ReminderMissed", event_id=derive_id("reminder-missed", key), business_id=item["businessId"],
        user_id=item["userId"], channel="system", occurred_at=now,
        payload={"appointmentId": appointment["appointmentId"], "minutesBefore": plan["minutes"],
                 "startsAt": appointment["startsAt"], "dueAt": plan["dueAt"]},
    )


class ReminderTimer:
    def __init__(self, lease: Lease, index: DueIndex, store: EventLog, clock: Clock, shards: int = DUE_SHARDS) -> None:
        self._lease = lease
        self._index = index
        self._store = store
        self._clock = clock
        self._shards = shards

    async def round(self) -> int | None:
        """Append every due reminder (and a ReminderMissed for every one whose appointment has
        started): how many were new, or None while another process holds the lease."""
        if not await self._lease.hold():
            return None
        now = self._clock.now()
        shards = await asyncio.gather(*(self._index.due(n, iso(now)) for n in range(self._shards)))
        appended = 0
        for item in (i for shard in shards for i in shard):
            for appointment, plan in due_reminders(item, now):
                appended += await self._append(reminder_event(item, appointment, plan, now), plan)
            for appointment, plan in missed_reminders(item, now):
                appended += await self._append(missed_event(item, appointment, plan, now), plan)
        return appended

    async def _append(self, event: Any, plan: dict[str, Any]) -> int:
        key = reminder_key(event.payload.appointmentId, plan["minutes"], event.payload.startsAt)
        try:
            result = await self._store.append(event, external_id=keys.reminder(key))
        except Exception as exc:  # one customer's failure must not stop the others'
            log.warning("reminder.failed", appointmentId=event.payload.appointmentId, error=f"{type(exc).__name__}: {exc}"[:200])
            return 0
        if not result.duplicate:
            log.info("reminder.appended" if event.type == "ReminderSent" else "reminder.missed",
                     appointmentId=event.payload.appointmentId, minutesBefore=plan["minutes"])
        return 0 if result.duplicate else 1

    async def release(self) -> None:
        await self._lease.release()


async def run_reminders(timer: ReminderTimer, stop: asyncio.Event, every_s: float = EVERY_S) -> None:
    """A round every `every_s` seconds until `stop`; then the lease is handed back."""
    try:
        while not stop.is_set():
            try:
                await timer.round()
            except Exception as exc:  # the timer must never take the worker down
                log.warning("reminder.round_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await wait_or_stop(stop, every_s)
    finally:
        await timer.release()
