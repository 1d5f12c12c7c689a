"""What the inbox shows, read from the projections (sessions, messages, customer facts) and the
inbox's own view state. No writes except the reader's view state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentstream.adapters.business import handoff_timeout_minutes
from agentstream.adapters.dynamo import from_item, query_all, read_into, to_item, until_processed
from agentstream.adapters.handoff_routes import conversation_view
from agentstream.adapters.http_common import Deps
from agentstream.adapters.inbox_views import InboxViews, unread
from agentstream.adapters.tables import SESSIONS_GSI
from agentstream.events import utc_now
from agentstream.projections.facts import current_facts

MAX_ROWS = 100
STATE_LABELS = {"ai": "AI", "waiting": "Waiting for a person", "human": "Person", "resolved": "Resolved"}


@dataclass
class Conversation:
    view: dict[str, Any]  # handoff_routes.conversation_view: sessionId, userId, status, channel, …
    messages: list[dict[str, Any]]
    facts: list[tuple[str, str]] = field(default_factory=list)
    unread: int = 0
    timezone: str = "UTC"  # the business's: times are shown in it

    @property
    def last(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None

    @property
    def seen_seq(self) -> int:
        return max((int(m.get("seq", 0)) for m in self.messages), default=0)


def in_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A session's messages in log order (one session is one customer's stream: seqs ascend)."""
    return sorted(messages, key=lambda m: int(m.get("seq", 0)))


def views(d: Deps) -> InboxViews:
    return InboxViews(d.ddb, d.settings.tables.inbox_views)


def fact_text(value: Any) -> str:
    """A fact's value as one line (appointments and orders are maps)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    return str(value)


async def customer_facts(d: Deps, business_id: str, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each customer's current facts as (kind, text), read 100 customers a BatchGetItem."""
    found: dict[str, list[tuple[str, str]]] = {}
    table, now = d.settings.tables.facts, utc_now()
    unique = sorted(set(user_ids))
    for start in range(0, len(unique), 100):
        keys = [to_item({"businessId": business_id, "userId": u}) for u in unique[start:start + 100]]
        request: dict[str, Any] = {table: {"Keys": keys}}
        states: list[dict[str, Any]] = []
        await until_processed(lambda pending: read_into(d.ddb, pending, table, states), request, "UnprocessedKeys")
        for state in states:
            found[state["userId"]] = [(f["kind"], fact_text(f["value"])) for f in current_facts(state, now)]
    return found


def local_time(ts: str | None, timezone: str, fmt: str = "%H:%M") -> str:
    """An item's UTC timestamp in the business's time zone ('' for none)."""
    if not ts:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone).strftime(fmt)


async def _business(d: Deps, business_id: str) -> tuple[int, str]:
    """The business's handoff timeout (minutes) and time zone."""
    info = await d.directory.info(business_id)
    return handoff_timeout_minutes(info), str((info or {}).get("timezone") or "UTC")


async def conversations(d: Deps, business_id: str, status: str | None = None) -> list[Conversation]:
    """The business's conversations, latest message first (at most MAX_ROWS), with their last
    message, unread count and the customer's current facts."""
    sessions = await query_all(d.ddb, TableName=d.settings.tables.sessions, IndexName=SESSIONS_GSI,
                               KeyConditionExpression="businessId = :b", ExpressionAttributeValues=to_item({":b": business_id}))
    (timeout, timezone), now = await _business(d, business_id), utc_now()
    rows = [conversation_view(s, timeout, now) for s in sessions]
    rows = sorted((r for r in rows if status is None or r["status"] == status),
                  key=lambda r: r["lastMessageAt"] or "", reverse=True)[:MAX_ROWS]
    limit = asyncio.Semaphore(8)

    async def messages(session_id: str) -> list[dict[str, Any]]:
        async with limit:
            return in_order(await d.projections.session_messages(session_id))

    found = await asyncio.gather(*(messages(r["sessionId"]) for r in rows))
    seen = await views(d).seen(business_id)
    facts = await customer_facts(d, business_id, [r["userId"] for r in rows])
    return [Conversation(r, m, facts.get(r["userId"], []), unread(m, seen.get(r["sessionId"], 0)), timezone)
            for r, m in zip(rows, found)]


async def conversation(d: Deps, session: dict[str, Any]) -> Conversation:
    """One conversation with all its messages in order."""
    timeout, timezone = await _business(d, session["businessId"])
    view = conversation_view(session, timeout, utc_now())
    messages = in_order(await d.projections.session_messages(session["sessionId"]))
    facts = await customer_facts(d, session["businessId"], [session["userId"]])
    return Conversation(view, messages, facts.get(session["userId"], []), timezone=timezone)
