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
from agentstream.projections.conversation import reply_status
from agentstream.projections.facts import current_facts

MAX_ROWS = 100
STATE_LABELS = {"ai": "AI", "waiting": "Waiting for a person", "human": "Person", "resolved": "Resolved"}
KIND_LABELS = {"button": "tapped a button", "location": "location", "contact": "contact",
               "unsupported": "a message the channel does not support"}


@dataclass
class Conversation:
    view: dict[str, Any]  # handoff_routes.conversation_view: sessionId, userId, status, channel, …
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


def fact_text(value: Any) -> str:
    """A fact's value as one line (appointments and orders are maps)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    return str(value)


async def customer_facts(d: Deps, business_id: str, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each customer's current facts as (kind, text), read 100 customers a BatchGetItem."""
    return (await _customers(d, business_id, user_ids, with_memory=False))[0]


async def _read_both(ddb: Any, request: dict[str, Any], facts_table: str, memory_table: str,
                     facts: list[dict[str, Any]], memories: list[dict[str, Any]]) -> dict[str, Any]:
    """One BatchGetItem of the facts (and memory) items; what each table answered is added."""
    answer = await read_into(ddb, request, facts_table, facts)
    memories.extend(from_item(i) for i in answer.get("Responses", {}).get(memory_table, []))
    return answer


async def _customers(d: Deps, business_id: str, user_ids: list[str], with_memory: bool = True
                     ) -> tuple[dict[str, list[tuple[str, str]]], dict[str, dict[str, Any]]]:
    """Each customer's current facts as (kind, text) and, with `with_memory`, the delivery
    statuses of their memory ({"replyStatus": …}); 100 keys a BatchGetItem (50 customers when
    both tables are read)."""
    facts_table, memory_table, now = d.settings.tables.facts, d.settings.tables.rag_user, utc_now()
    facts: dict[str, list[tuple[str, str]]] = {}
    memories: dict[str, dict[str, Any]] = {}
    unique, step = sorted(set(user_ids)), 50 if with_memory else 100
    for start in range(0, len(unique), step):
        keys = [to_item({"businessId": business_id, "userId": u}) for u in unique[start:start + step]]
        request: dict[str, Any] = {facts_table: {"Keys": keys}}
        if with_memory:
            request[memory_table] = {"Keys": keys, "ProjectionExpression": "userId, replyStatus"}
        states: list[dict[str, Any]] = []
        read: list[dict[str, Any]] = []
        await until_processed(lambda pending: _read_both(d.ddb, pending, facts_table, memory_table, states, read),
                              request, "UnprocessedKeys")
        for state in states:
            facts[state["userId"]] = [(f["kind"], fact_text(f["value"])) for f in current_facts(state, now)]
        memories.update((memory["userId"], memory) for memory in read)
    return facts, memories


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
    message, unread count, the customer's current facts and the delivery statuses."""
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
    facts, memories = await _customers(d, business_id, [r["userId"] for r in rows])
    return [Conversation(r, m, facts.get(r["userId"], []), unread(m, seen.get(r["sessionId"], 0)), timezone,
                         memories.get(r["userId"], {})) for r, m in zip(rows, found)]


async def conversation(d: Deps, session: dict[str, Any]) -> Conversation:
    """One conversation with all its messages in order and the customer's memory (what became
    of the messages sent)."""
    timeout, timezone = await _business(d, session["businessId"])
    view = conversation_view(session, timeout, utc_now())
    messages, (facts, memories) = await asyncio.gather(
        d.projections.session_messages(session["sessionId"]), _customers(d, session["businessId"], [session["userId"]]))
    return Conversation(view, in_order(messages), facts.get(session["userId"], []), timezone=timezone,
                        memory=memories.get(session["userId"], {}))
