"""The month's model spend the inbox shows its owner, against the business's budget (read from
the usage table; the spend ceiling itself is streams/spend.py's)."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.usage import UsageStore
from agentstream.events import utc_now
from agentstream.projections.spend import Verdict, budget_micros, month_of, zone_of


async def month_spend(ddb: Any, usage_table: str, events_table: str, business_id: str,
                      info: dict[str, Any] | None) -> dict[str, Any] | None:
    """`Verdict.view()` of this month; None for a business with no budget that has spent nothing."""
    month = month_of(utc_now(), zone_of(info))
    verdict = Verdict(month, await UsageStore(ddb, usage_table, events_table).spent(business_id, month), budget_micros(info))
    return verdict.view() if verdict.budget is not None or verdict.spent else None
