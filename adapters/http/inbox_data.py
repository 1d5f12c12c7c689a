"""What the inbox shows, read through the owner service (sessions, messages, customer facts) and
the inbox's own view state. No writes except the reader's view state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentstream.adapters.http.common import Deps
from agentstream.adapters.dynamo.inbox_views import InboxViews, unread
from agentstream.adapters.http.owner_service import conversation_view
from agentstream.events import utc_now
from agentstream.projections.appointments import OPEN
from agentstream.projections.conversation import reply_status

MAX_ROWS = 100
BOOKINGS_AHEAD_DAYS = 60  # the Bookings view's range, from today (within the list's range limit)
STATE_LABELS = {"ai": "AI", "waiting": "Waiting for a person", "human": "Person", "resolved": "Resolved"}
KIND_LABELS = {"button": "tapped a button", "location": "location", "contact": "contact", "image": "photo",
               "audio": "voice note", "document": "document", "appointment": "booking", "reminder": "reminder",
               "unsupported": "a message the channel does not support"}


@dataclass
class Conversation:
    view: dict[str, Any]  # owner_service.conversation_view: sessionId, userId, status, channel, …
    messages: list[dict[str, Any]]
    facts: list[tuple[str, str]] = field(default_factory=list)
    unread: int = 0
    timezone: str = "UTC"  # the business's: times are shown in it
    memory: dict[str, Any] = field(default_factory=dict)  # the customer's: {"replyStatus": …} (delivery statuses)

    @property
    def last(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None

    @property
    def undelivered(self) -> dict[str, Any] | None:
        """The failure of our latest message to the customer, if it was not delivered."""
        ours = [m for m in self.messages if m.get("type") == "agent"]
        status = reply_status(self.memory, str(ours[-1].get("messageId"))) if ours else None
        return status if status and status["status"] == "failed" else None

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The messages as the conversation shows them (see `arranged`)."""
        return arranged(self.messages, self.memory)

    @property
    def seen_seq(self) -> int:
        return max((int(m.get("seq", 0)) for m in self.messages), default=0)


def in_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A session's messages in log order (one session is one customer's stream: seqs ascend)."""
    return sorted(messages, key=lambda m: int(m.get("seq", 0)))


def arranged(messages: list[dict[str, Any]], memory: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages (in order) to show: each with `reactions` (the customer's current reaction to it,
    a removed one dropped) and, for ours, `status` ({status, at, error?} the vendor reported, or
    our own delivery failure); a reaction to a message not shown here stays a line of its own."""
    rows = [{**m, "reactions": [], "status": reply_status(memory, str(m.get("messageId")))}
            for m in messages if _kind(m) != "reaction"]
    by_id = {str(r.get("messageId")): r for r in rows}
    latest: dict[str, dict[str, Any]] = {}
    alone = []
    for m in messages:
        if _kind(m) != "reaction":
            continue
        target = by_id.get(str(_meta(m).get("reactsTo")))
        if target is None:
            alone.append({**m, "reactions": [], "status": None})
        else:
            latest[str(target["messageId"])] = m  # one reaction per message: the later replaces it
    for target_id, m in latest.items():
        if _meta(m).get("emoji"):
            by_id[target_id]["reactions"] = [str(_meta(m)["emoji"])]
    return sorted([*rows, *alone], key=lambda r: int(r.get("seq", 0)))


def _meta(message: dict[str, Any]) -> dict[str, Any]:
    return message.get("metadata") or {}


def _kind(message: dict[str, Any]) -> str:
    return str(_meta(message).get("kind") or "text")


def views(d: Deps) -> InboxViews:
    return InboxViews(d.ddb, d.settings.tables.inbox_views)


def local_time(ts: str | None, timezone: str, fmt: str = "%H:%M") -> str:
    """An item's UTC timestamp in the business's time zone ('' for none)."""
    if not ts:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone).strftime(fmt)


async def conversations(d: Deps, business_id: str, status: str | None = None) -> list[Conversation]:
    """The business's conversations, latest message first (at most MAX_ROWS), with their last
    message, unread count, the customer's current facts and the delivery statuses."""
    (_, timezone), rows = await d.owner.business(business_id), await d.owner.conversations(business_id, status, MAX_ROWS)
    limit = asyncio.Semaphore(8)

    async def messages(session_id: str) -> list[dict[str, Any]]:
        async with limit:
            return in_order(await d.owner.session_messages(session_id))

    found = await asyncio.gather(*(messages(r["sessionId"]) for r in rows))
    seen = await views(d).seen(business_id)
    facts, memories = await d.owner.customers(business_id, [r["userId"] for r in rows])
    return [Conversation(r, m, facts.get(r["userId"], []), unread(m, seen.get(r["sessionId"], 0)), timezone,
                         memories.get(r["userId"], {})) for r, m in zip(rows, found)]


async def conversation(d: Deps, session: dict[str, Any]) -> Conversation:
    """One conversation with all its messages in order and the customer's memory (what became
    of the messages sent)."""
    timeout, timezone = await d.owner.business(session["businessId"])
    view = conversation_view(session, timeout, utc_now())
    messages, (facts, memories) = await asyncio.gather(
        d.owner.session_messages(session["sessionId"]), d.owner.customers(session["businessId"], [session["userId"]]))
    return Conversation(view, in_order(messages), facts.get(session["userId"], []), timezone=timezone,
                        memory=memories.get(session["userId"], {}))


async def bookings_ahead(d: Deps, business_id: str) -> list[dict[str, Any]]:
    """The business's appointments from today for BOOKINGS_AHEAD_DAYS (its local days), soonest first."""
    now = utc_now()
    today = now.astimezone((await d.bookings.rules(business_id)).zone).date()
    return await d.bookings.list(business_id, today.isoformat(), (today + timedelta(days=BOOKINGS_AHEAD_DAYS)).isoformat(),
                                 None, now)


async def waiting_bookings(d: Deps, business_id: str) -> int:
    """How many appointments wait for the owner (requests, proposals): the count beside Bookings,
    as a conversation's unread messages are beside it."""
    return sum(1 for r in await bookings_ahead(d, business_id) if r["status"] in OPEN)
