"""The spend ceiling's arithmetic, pure: model prices (USD per million input and output tokens),
what a logged model call cost, the month in a business's time zone, the budget and where the
month stands against it. streams/spend.py checks and records with it; the inbox and `status`
show it. No I/O here.

A business's monthly budget is business-info `settings.monthlyBudgetUsd` (none: no ceiling); a
model's price comes from the built-in table, `MODEL_PRICES` and business-info
`settings.modelPrices`, in that order of precedence (last wins). The month is the calendar month
in the business's time zone at the time of the event that spent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import structlog

from agentstream.events import Event, FactsExtracted, ReplyGenerated

log = structlog.get_logger(__name__)
BUDGET_MODEL = "budget"  # the model of the reply that tells a customer a person will answer (the budget is spent)
SPENT = "spendMicros"  # the usage item's attribute: micro-USD spent in the month
WARN_AT = 0.8
MARKS = {"warn": "warnedAt", "spent": "spentAt"}  # the usage item's attribute set by whoever told the owner first
# USD per million tokens (input, output), list prices, as `shadow`'s table; a model is priced by its
# longest known prefix (gpt-4o-mini-2024-07-18 as gpt-4o-mini); "*" prices a model no table names
# (dear on purpose: a ceiling errs high)
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00), "gpt-3.5-turbo": (0.50, 1.50), "offline": (0.0, 0.0),
    "*": (2.50, 10.00),
}


class PriceError(ValueError):
    """A price table that is not {model: [input, output]} of non-negative numbers."""


@dataclass(frozen=True)
class PriceTable:
    rows: dict[str, tuple[float, float]]

    @classmethod
    def parse(cls, text: str | dict[str, Any] | None, base: "PriceTable | None" = None) -> "PriceTable":
        """`text` (JSON or a map) over `base` (the built-in table if None); PriceError if malformed."""
        rows = dict((base or BUILT_IN).rows)
        if not text:
            return cls(rows)
        try:
            given = orjson.loads(text) if isinstance(text, str) else text
        except orjson.JSONDecodeError as exc:
            raise PriceError(f"model prices are not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise PriceError('model prices must be a map {"model": [USD per 1M input tokens, per 1M output tokens]}')
        for model, price in given.items():
            rows[str(model)] = _price(str(model), price)
        return cls(rows)

    def price(self, model: str) -> tuple[float, float]:
        """The model's row, or its longest known prefix's, or "*"'s."""
        if model in self.rows:
            return self.rows[model]
        known = [name for name in self.rows if name != "*" and model.startswith(name + "-")]
        return self.rows[max(known, key=len)] if known else self.rows.get("*", (0.0, 0.0))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Micro-USD of a call, rounded up (USD per million tokens is micro-USD per token)."""
        into, out = self.price(model)
        return math.ceil(prompt_tokens * into + completion_tokens * out - 1e-9)


def _price(model: str, price: Any) -> tuple[float, float]:
    if isinstance(price, dict) and set(price) == {"input", "output"}:  # `shadow --prices`' form
        price = [price["input"], price["output"]]
    if (isinstance(price, (list, tuple)) and len(price) == 2
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in price)):
        return float(price[0]), float(price[1])
    raise PriceError(f"price of {model!r} must be [USD per 1M input tokens, USD per 1M output tokens], got {price!r}")


BUILT_IN = PriceTable(DEFAULT_PRICES)


def budget_micros(info: dict[str, Any] | None) -> int | None:
    """The business's monthly budget in micro-USD (settings.monthlyBudgetUsd); None: no ceiling."""
    value = ((info or {}).get("settings") or {}).get("monthlyBudgetUsd")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(round(float(value) * 1_000_000))


def month_of(at: datetime, zone: str) -> str:
    """The calendar month of `at` in the business's time zone (UTC if unknown), as YYYY-MM."""
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return at.astimezone(tz).strftime("%Y-%m")


def usage_of(event: Event) -> tuple[str, int, int] | None:
    """(model, prompt tokens, completion tokens) of an event that records a model call, else None."""
    if isinstance(event, (ReplyGenerated, FactsExtracted)):
        usage = event.payload.usage
        prompt, completion = usage.promptTokens, usage.completionTokens
        if isinstance(event, ReplyGenerated):  # drafts dropped for a longer burst were paid for too
            prompt, completion = prompt + event.payload.droppedUsage.promptTokens, completion + event.payload.droppedUsage.completionTokens
        if prompt or completion:
            return event.payload.model, prompt, completion
    return None


def cost_of(event: Event, info: dict[str, Any] | None, base: PriceTable = BUILT_IN) -> int:
    """What the model call an event records cost, in micro-USD (0: none)."""
    used = usage_of(event)
    if used is None:
        return 0
    return prices_of(info, base).cost(*used)


def prices_of(info: dict[str, Any] | None, base: PriceTable) -> PriceTable:
    """The business's prices: its settings.modelPrices over `base` (a malformed one is ignored, logged)."""
    own = ((info or {}).get("settings") or {}).get("modelPrices")
    if not own:
        return base
    try:
        return PriceTable.parse(own, base)
    except PriceError as exc:
        log.warning("spend.business_prices_ignored", businessId=(info or {}).get("businessId"), error=str(exc))
        return base


def zone_of(info: dict[str, Any] | None) -> str:
    return str((info or {}).get("timezone") or "UTC")


@dataclass(frozen=True)
class Verdict:
    """The month's spend of a business against its budget."""

    month: str
    spent: int
    budget: int | None

    @property
    def state(self) -> str:
        """none (no ceiling), ok, warn (80 % or more) or spent (100 % or more)."""
        if self.budget is None:
            return "none"
        if self.spent >= self.budget:
            return "spent"
        return "warn" if self.spent >= WARN_AT * self.budget else "ok"

    def view(self) -> dict[str, Any]:
        """As the inbox, status and the owner's webhook show it."""
        share = None if not self.budget else round(100 * self.spent / self.budget, 1)
        return {"month": self.month, "spentUsd": self.spent / 1e6,
                "budgetUsd": None if self.budget is None else self.budget / 1e6, "percent": share, "state": self.state}


def month_totals(events: Iterable[Event], info: dict[str, Any] | None, base: PriceTable = BUILT_IN) -> dict[str, int]:
    """What a business's logged events spent, per month (what a replay sets the usage items to)."""
    totals: dict[str, int] = {}
    zone = zone_of(info)
    for event in events:
        cost = cost_of(event, info, base)
        if cost:
            month = month_of(event.occurredAt, zone)
            totals[month] = totals.get(month, 0) + cost
    return totals
