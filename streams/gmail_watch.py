"""Renews each business's Gmail `users.watch` before it lapses (Google ends a watch after 7 days).

Every gateway runs the timer; the lease `timer:gmail-watch` in the leases table lets one of them
at a time do the work. A round lists the businesses with gmail credentials and, for each with a
`watchTopic` whose watch ends within a day (or was never started here, or went to another
topic), calls users.watch and keeps the returned expiration and historyId (state `gmail-watch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.streams.leases import HeldLease, LeaseTable, now_ms
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)
LEASE = "timer:gmail-watch"
EVERY_S = 600.0
RENEW_WITHIN_MS = 24 * 3600 * 1000
Watch = Callable[[str, str], Awaitable[dict[str, Any]]]  # (businessId, topic) -> {historyId, expiration}


class WatchRenewer:
    def __init__(self, leases: LeaseTable, store: CredentialStore, watch: Watch,
                 renew_within_ms: int = RENEW_WITHIN_MS) -> None:
        self._lease = HeldLease(leases, LEASE)
        self._store = store
        self._watch = watch
        self._within = renew_within_ms

    async def round(self) -> list[str] | None:
        """Renew what is due: the businesses renewed, or None while another process holds the lease."""
        if not await self._lease.hold():
            return None
        return [b for b in await self._store.businesses("gmail") if await self._renew_if_due(b)]

    async def release(self) -> None:
        """Hand the lease back (on shutdown), so another gateway takes the timer at once."""
        await self._lease.release()

    async def _renew_if_due(self, business_id: str) -> bool:
        try:
            topic = (await self._store.get(business_id, "gmail")).get("watchTopic")
            state = await self._store.get(business_id, "gmail-watch")
            if not topic or (state.get("topic") == topic and int(state.get("expiration", 0)) - now_ms() > self._within):
                return False
            result = await self._watch(business_id, topic)
            await self._remember(business_id, topic, result)
            return True
        except Exception as exc:  # one business's failure must not stop the others'
            log.warning("gmail.watch_failed", businessId=business_id, error=f"{type(exc).__name__}: {exc}"[:200])
            return False

    async def _remember(self, business_id: str, topic: str, result: dict[str, Any]) -> None:
        """Keep the watch's expiry; a first watch's historyId is where reading the mailbox starts."""
        history_id = str(result.get("historyId", ""))
        await self._store.set_state(business_id, "gmail-watch", {
            "expiration": str(result["expiration"]), "historyId": history_id, "topic": topic})
        if history_id and not (await self._store.get(business_id, "gmail-state")).get("historyId"):
            await self._store.set_state(business_id, "gmail-state", {"historyId": history_id})
        log.info("gmail.watch_renewed", businessId=business_id, expiration=str(result["expiration"]))


async def run_watch_renewal(renewer: WatchRenewer, stop: asyncio.Event, every_s: float = EVERY_S) -> None:
    """A round every `every_s` seconds until `stop`; then the lease is handed back."""
    try:
        while not stop.is_set():
            try:
                await renewer.round()
            except Exception as exc:  # the timer must never take the gateway down
                log.warning("gmail.watch_round_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await wait_or_stop(stop, every_s)
    finally:
        await renewer.release()


async def watch_expiries(store: CredentialStore) -> list[dict[str, Any]]:
    """Each business with gmail credentials: its watch's expiry (epoch ms, None if none) and topic."""
    found = []
    for business_id in await store.businesses("gmail"):
        topic = (await store.get(business_id, "gmail")).get("watchTopic")
        expiration = (await store.get(business_id, "gmail-watch")).get("expiration")
        found.append({"business": business_id, "topic": topic, "expiresAt": int(expiration) if expiration else None})
    return found
