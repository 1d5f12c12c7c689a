"""The spend ceiling: what a model call costs, the month's spend of a business against its
budget, and the check made before every model call.

A business's monthly budget is business-info `settings.monthlyBudgetUsd` (none: no ceiling); a
model's price is USD per million input and output tokens, from the built-in table, `MODEL_PRICES`
and business-info `settings.modelPrices`, in that order of precedence (last wins). The month is
the calendar month in the business's time zone at the time of the event that spent.

Every event that records a model call's usage (`ReplyGenerated`, `FactsExtracted`) carries, in
its append's transaction, an atomic ADD of its cost (micro-USD, rounded up) to the business's
item for that month in the usage table: the total is exact under any number of workers, and a
duplicate append adds nothing. Before a model call the total is read: at 80 % of the budget the
owner is told once (webhook); at 100 % the call is not made, the customer is told a person will
answer, and the conversation is handed off (`by: system`, `reason: budget`). A call already under
way when the budget runs out still counts, so the month can pass its budget by at most the turns
in flight times the dearest turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import structlog
from cachetools import TTLCache

from agentstream.adapters.llm import Answer
from agentstream.adapters.side_items import AddTo
from agentstream.events import Event, MessageReceived, iso
from agentstream.projections.handoff import notice
from agentstream.projections.spend import (  # noqa: F401  (the names the reply path and the tests use from here)
    BUDGET_MODEL, BUILT_IN, DEFAULT_PRICES, MARKS, SPENT, PriceError, PriceTable, Verdict, budget_micros, cost_of, month_of,
    month_totals, prices_of, usage_of, zone_of,
)

log = structlog.get_logger(__name__)
Warn = Callable[[str, dict[str, Any]], Awaitable[None]]  # tells the owner (business id, payload); must not raise
MARK_MEMORY_S = 300  # how long a worker remembers a month it has marked (a release clears the marks)


class UsageLedger(Protocol):
    """The usage table: a business's spend per month (adapters/dynamo/usage.py)."""

    def location(self, business_id: str, month: str) -> tuple[str, dict[str, Any]]: ...

    async def spent(self, business_id: str, month: str) -> int: ...

    async def mark(self, business_id: str, month: str, attribute: str, at: str) -> bool:
        """Set `attribute` once: True for the caller that set it."""
        ...

    async def set_spent(self, business_id: str, month: str, micros: int) -> None: ...

    async def add_once(self, business_id: str, month: str, micros: int, key: str) -> bool:
        """Add `micros` once per `key` (a spend no logged event records); True if added now."""
        ...


class SpendMeter:
    """The budget check before a model call, and the usage item's ADD for an event that spent."""

    def __init__(self, ledger: UsageLedger, prices: PriceTable = BUILT_IN, warn: Warn | None = None) -> None:
        self._ledger = ledger
        self._prices = prices
        self._warn = warn
        self._marked: TTLCache[tuple[str, str, str], bool] = TTLCache(10_000, MARK_MEMORY_S)

    async def verdict(self, business_id: str, info: dict[str, Any] | None, at: datetime, always: bool = False) -> Verdict:
        """The month of `at`: its spend (read, strongly consistent; without a budget only if
        `always`) and the budget."""
        month, budget = month_of(at, zone_of(info)), budget_micros(info)
        spent = await self._ledger.spent(business_id, month) if budget is not None or always else 0
        return Verdict(month, spent, budget)

    async def allows(self, business_id: str, info: dict[str, Any] | None, at: datetime) -> bool:
        """Whether a model call may be made now (and, the first time the month passes 80 % or
        100 %, the owner is told)."""
        verdict = await self.verdict(business_id, info, at)
        if verdict.state in MARKS:
            await self._tell_once(business_id, verdict, at)
        return verdict.state != "spent"

    async def gate(self, inbound: MessageReceived, info: dict[str, Any] | None, language: str, at: datetime) -> Answer | None:
        """Before the model answers `inbound`: None to go on, or, the budget spent, the answer
        that tells the customer a person will answer (the conversation is then handed off)."""
        if await self.allows(inbound.businessId, info, at):
            return None
        log.info("spend.budget_spent", businessId=inbound.businessId, inboundEventId=inbound.eventId)
        return Answer(notice(language, "system"), BUDGET_MODEL, 0)

    def charges(self, event: Event, info: dict[str, Any] | None) -> list[AddTo]:
        """The side item that adds what `event`'s model call cost to its month (none if nothing)."""
        cost = cost_of(event, info, self._prices)
        if not cost:
            return []
        table, key = self._ledger.location(event.businessId, month_of(event.occurredAt, zone_of(info)))
        return [AddTo(f"usage:{key['month']}", SPENT, cost, table=table, key=key)]

    async def charge_alone(self, business_id: str, info: dict[str, Any] | None, at: datetime, model: str,
                           prompt_tokens: int, completion_tokens: int, key: str) -> int:
        """Count a model call no logged event records (a draft dropped unsent), once per `key`:
        the micro-USD added (0 if counted before). A replay does not see it (it is not in the log)."""
        cost = prices_of(info, self._prices).cost(model, prompt_tokens, completion_tokens)
        if cost and await self._ledger.add_once(business_id, month_of(at, zone_of(info)), cost, key):
            return cost
        return 0

    async def _tell_once(self, business_id: str, verdict: Verdict, at: datetime) -> None:
        """Mark the month (the release looks for months marked spent) and, the first time, tell the owner."""
        attribute = MARKS[verdict.state]
        seen = (business_id, verdict.month, attribute)
        if seen in self._marked:
            return
        self._marked[seen] = True  # a mark another worker set costs one failed write here, then none for a while
        if not await self._ledger.mark(business_id, verdict.month, attribute, iso(at)) or self._warn is None:
            return
        payload = {"type": "BudgetSpent" if verdict.state == "spent" else "BudgetWarning", "businessId": business_id,
                   "occurredAt": iso(at), **verdict.view()}
        log.info("spend.owner_told", businessId=business_id, kind=payload["type"], month=verdict.month)
        await self._warn(business_id, payload)


class SpendRebuild:
    """A replay's rebuild of the usage items: each business-month's total summed from the log,
    then set (never added), so the items say what the log says."""

    def __init__(self, ledger: UsageLedger, info: Callable[[str], Awaitable[dict[str, Any] | None]],
                 base: PriceTable = BUILT_IN) -> None:
        self._ledger = ledger
        self._info = info
        self._base = base
        self.totals: dict[tuple[str, str], int] = {}

    async def add(self, business_id: str, events: Iterable[Event]) -> None:
        spent = [e for e in events if usage_of(e) is not None]
        if not spent:
            return
        for month, micros in month_totals(spent, await self._info(business_id), self._base).items():
            self.totals[(business_id, month)] = self.totals.get((business_id, month), 0) + micros

    async def write(self) -> int:
        """Set every total summed; how many items."""
        for (business_id, month), micros in sorted(self.totals.items()):
            await self._ledger.set_spent(business_id, month, micros)
        return len(self.totals)
