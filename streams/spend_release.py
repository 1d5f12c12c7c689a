"""The owner's side of the spend ceiling: the webhook told at 80 % and 100 % (in the background),
and the conversations the system handed off for the budget given back to the AI once there is
budget again (a new month, a raised or removed budget).

The release runs in the worker, one worker at a time (a lease), every SPEND_RELEASE_EVERY
seconds. It reads only the months that ran out of budget (the usage items marked `spentAt`), so
an idle round costs one small Scan. For such a month's business whose budget has room now, each
conversation handed off with `by: system`, `reason: budget` gets `HandoffReleased` (by `system`)
through the owner service, once per handoff (an idempotency key of the session and the handoff's
seq); then the mark is cleared, so a month that runs out again is told and released again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from agentstream.events import utc_now
from agentstream.projections.handoff import is_budget_handoff
from agentstream.streams.leases import HeldLease
from agentstream.streams.spend import MARKS, SpendMeter, Warn
from agentstream.streams.stopping import wait_or_stop

log = structlog.get_logger(__name__)
LEASE = "timer:spend-release"


class Notify(Protocol):
    async def notify(self, business_id: str, payload: dict[str, Any]) -> bool | None: ...


def background_warner(webhook: Notify | None) -> Warn:
    """The meter's `warn`: the business's webhook called in the background (never raises)."""
    calls: set[asyncio.Task[Any]] = set()

    async def warn(business_id: str, payload: dict[str, Any]) -> None:
        if webhook is None:
            return
        task = asyncio.create_task(webhook.notify(business_id, payload))
        calls.add(task)
        task.add_done_callback(calls.discard)

    return warn


class Owner(Protocol):
    """What the release asks of the owner service (adapters/http/owner_service.OwnerService)."""

    async def conversations(self, business_id: str, status: str | None = None, limit: int = ...) -> list[dict[str, Any]]: ...

    async def release(self, session: dict[str, Any], reason: str, by: str = ..., key: str | None = ...) -> dict[str, Any]: ...


class SpentMonths(Protocol):
    async def spent_months(self) -> list[dict[str, Any]]:
        """The usage items marked `spentAt` (businessId, month)."""
        ...

    async def clear_marks(self, business_id: str, month: str, attributes: tuple[str, ...]) -> None: ...


class BudgetReleaser:
    """One round: release the budget handoffs of the businesses that have budget again."""

    def __init__(self, months: SpentMonths, meter: SpendMeter, owner: Owner,
                 info: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._months = months
        self._meter = meter
        self._owner = owner
        self._info = info

    async def round(self) -> int:
        """The conversations released."""
        released = 0
        for item in await self._months.spent_months():
            business, month = str(item["businessId"]), str(item["month"])
            verdict = await self._meter.verdict(business, await self._info(business), utc_now())
            if verdict.state == "spent":
                continue
            released += await self.release(business, f"budget: {verdict.state} in {verdict.month}")
            await self._months.clear_marks(business, month, tuple(MARKS.values()))
        return released

    async def release(self, business_id: str, reason: str) -> int:
        """Give each of the business's budget handoffs back to the AI; how many."""
        count = 0
        for status in ("waiting", "human"):
            for row in await self._owner.conversations(business_id, status):
                handoff = row.get("handoff") or {}
                if not is_budget_handoff(handoff):
                    continue
                session = {"businessId": business_id, "userId": row["userId"], "sessionId": row["sessionId"]}
                key = f"budget-release:{row['sessionId']}:{handoff.get('seq')}"
                result = await self._owner.release(session, reason, by="system", key=key)
                count += not result.get("duplicate", False)
        if count:
            log.info("spend.released", businessId=business_id, conversations=count, reason=reason)
        return count


async def run_release(releaser: BudgetReleaser, lease: HeldLease, stop: asyncio.Event, every_s: float) -> None:
    """A round every `every_s` seconds while this process holds the lease, until `stop`."""
    try:
        while not stop.is_set():
            try:
                if await lease.hold():
                    await releaser.round()
            except Exception as exc:  # the release must never take the worker down
                log.warning("spend.release_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await wait_or_stop(stop, every_s)
    finally:
        await lease.release()


async def month_spend(businesses: list[str], meter: SpendMeter,
                      info: Callable[[str], Awaitable[dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """This month's spend of each business that has a budget or has spent (`agentstream status`)."""
    rows = []
    for business in businesses:
        verdict = await meter.verdict(business, await info(business), utc_now(), always=True)
        if verdict.budget is not None or verdict.spent:
            rows.append({"business": business, **verdict.view()})
    return rows


def describe_spend(row: dict[str, Any]) -> str:
    """A status row's text for one business's month."""
    spent = f"${row['spentUsd']:.4f}"
    if row["budgetUsd"] is None:
        return f"{row['month']}: {spent} (no budget)"
    text = f"{row['month']}: {spent} of ${row['budgetUsd']:.2f} ({row['percent']} %)"
    return text + {"warn": ": 80 % reached, the owner was told", "spent": ": SPENT, new conversations go to a person"}.get(row["state"], "")
