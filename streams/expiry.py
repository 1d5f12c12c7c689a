"""The session timer: appends SessionExpired for active sessions idle past their timeout.

Every worker runs the timer; the lease `timer:session-expiry` in the leases table lets one of
them at a time do the work. A round reads only what is due: the conversation fold gives each
active session `nextDueAt` (lastMessageAt + the business's idle minutes) under a small
`dueShard`, and removes both when the session ends, so the sparse index
dueShard-nextDueAt-index holds active sessions only and a round is one Query per shard that
returns the due ones. Its cost follows the sessions that are due, not the sessions table.

Nudges ride on the same index: when a business has `nudgeAfterMinutes`, the fold makes
`nextDueAt` the earlier of the expiry (`expiresAt`) and the nudge's due time (`nudgeDue.at`,
the next instant the business is open), and the timer appends the session's one NudgeSent
(external id `nudge:<sessionId>`) when it is due; the fold decides whether it stands.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol

import structlog

from agentstream import idempotency as keys
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.events import derive_id, iso, new_event, utc_now
from agentstream.projections import templates
from agentstream.projections.conversation import DUE_SHARDS
from agentstream.streams.leases import HeldLease, LeaseTable
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)
LEASE = "timer:session-expiry"
EVERY_S = 60.0


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class DueSessions(Protocol):
    """The sessions whose next due time has come (the projection store reads them)."""

    async def due_sessions(self, shard: int, until: str) -> list[dict[str, Any]]: ...


class ExpiryTimer:
    def __init__(self, leases: LeaseTable, due: DueSessions, store: EventStore, shards: int = DUE_SHARDS,
                 lease: str = LEASE) -> None:
        self._lease = HeldLease(leases, lease)
        self._due = due
        self._store = store
        self._shards = shards

    async def round(self, now: datetime | None = None) -> int | None:
        """Expire what is due: how many sessions got a SessionExpired, or None while another
        process holds the lease."""
        if not await self._lease.hold():
            return None
        now = now or utc_now()
        until = iso(now)
        shards = await asyncio.gather(*(self._due.due_sessions(n, until) for n in range(self._shards)))
        expired = 0
        for session in (s for shard in shards for s in shard):
            await self._nudge_if_due(session, now)
            if session.get("expiresAt", session["nextDueAt"]) <= until:
                expired += await self._expire(session)
        return expired

    async def release(self) -> None:
        """Hand the lease back (on shutdown), so another worker takes the timer at once."""
        await self._lease.release()

    async def _expire(self, session: dict[str, Any]) -> int:
        """Append the session's SessionExpired at its due time, once per due time (its id and
        idempotency key derive from the session and nextDueAt: an expiry the fold found stale,
        because the customer wrote first, does not stand in for the next one); 1 if appended now."""
        due_at = session.get("expiresAt", session["nextDueAt"])  # nextDueAt may be the nudge's
        due, last = _time(due_at), _time(session["lastMessageAt"])
        minutes = round((due - last).total_seconds() / 60)
        event = new_event(
            "SessionExpired", event_id=derive_id("expired", session["sessionId"], due_at), business_id=session["businessId"],
            user_id=session["userId"], channel="system", occurred_at=due,
            payload={"sessionId": session["sessionId"], "reason": f"idle for {minutes} min"},
        )
        try:
            result = await self._store.append(event, external_id=keys.expired(session['sessionId'], due_at))
        except Exception as exc:  # one session's failure must not stop the others'
            log.warning("expiry.failed", sessionId=session["sessionId"], error=f"{type(exc).__name__}: {exc}"[:200])
            return 0
        return 0 if result.duplicate else 1


    async def _nudge_if_due(self, session: dict[str, Any], now: datetime) -> int:
        """Append the session's one NudgeSent (external id nudge:<sessionId>) when its nudge is
        due; its time is now, and the conversation fold decides whether it stands. 1 if appended."""
        plan = session.get("nudgeDue")
        if not plan or _time(plan["at"]) > now:
            return 0
        event = new_event(
            "NudgeSent", event_id=derive_id("nudge", session["sessionId"]), business_id=session["businessId"],
            user_id=session["userId"], location_id=session.get("locationId"), channel=plan["channel"], occurred_at=now,
            payload={"sessionId": session["sessionId"], "content": plan["content"], "deliverTo": dict(plan["deliverTo"]),
                     "send": templates.outbound_send(plan.get("windowUntil"), plan.get("template"), now)},
        )
        try:
            result = await self._store.append(event, external_id=keys.nudge(session['sessionId']))
        except Exception as exc:  # one session's failure must not stop the others'
            log.warning("nudge.failed", sessionId=session["sessionId"], error=f"{type(exc).__name__}: {exc}"[:200])
            return 0
        if not result.duplicate:
            log.info("nudge.appended", sessionId=session["sessionId"])
        return 0 if result.duplicate else 1


async def run_expiry(timer: ExpiryTimer, stop: asyncio.Event, every_s: float = EVERY_S) -> None:
    """A round every `every_s` seconds until `stop`; then the lease is handed back."""
    try:
        while not stop.is_set():
            try:
                expired = await timer.round()
                if expired:
                    log.info("expiry.round", expired=expired)
            except Exception as exc:  # the timer must never take the worker down
                log.warning("expiry.round_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await wait_or_stop(stop, every_s)
    finally:
        await timer.release()
