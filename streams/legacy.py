"""`import-legacy`: the seed server's ai-agent-messages (and sessions) appended to the log.

Messages are appended per (business, user) in timestamp order, each under the external id
`legacy:<messageId>`, so a second run appends nothing. An agent message becomes the
ReplyGenerated of the user message before it (recorded under that message's reply key, so
the worker never asks the model again); imported user messages carry `replyTo.imported` and
are never answered. A replay afterwards rebuilds sessions and memory for existing customers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agentstream import idempotency as keys
from agentstream.events import CHANNELS, IMPORTED, Event, derive_id, new_event, reply_event_id
from agentstream.streams.ports import EventLog
from agentstream.streams.reply_policy import reply_key
from agentstream.adapters.channels.rest import REST

TableScan = Callable[..., Awaitable[list[dict[str, Any]]]]


@dataclass
class ImportReport:
    messages: int = 0
    appended: int = 0
    duplicates: int = 0
    skipped: int = 0


def _time(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _channel(message: dict[str, Any]) -> str:
    meta = message.get("metadata") or {}
    for candidate in (meta.get("channel"), meta.get("source")):
        if candidate in CHANNELS:
            return str(candidate)
    return REST.name


def conversations(messages: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Legacy messages grouped by (business, user), each group in timestamp order.

    Items the projections wrote (they carry `seq`) are this system's own and are left out."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        if "seq" not in m and m.get("businessId") and m.get("userId") and m.get("timestamp") and m.get("messageId"):
            grouped[(m["businessId"], m["userId"])].append(m)
    return {k: sorted(v, key=lambda m: (m["timestamp"], m["messageId"])) for k, v in grouped.items()}


def legacy_event(message: dict[str, Any], previous_user: Event | None, location_id: str | None = None) -> Event | None:
    """The log event of one legacy message (None for an agent message with nothing to answer)."""
    base = {"business_id": message["businessId"], "user_id": message["userId"], "channel": _channel(message),
            "occurred_at": _time(message["timestamp"]), "location_id": location_id}
    if message.get("type") == "agent":
        if previous_user is None:
            return None
        return new_event("ReplyGenerated", event_id=reply_event_id(previous_user.eventId), **base, payload={
            "content": str(message.get("content", "")), "inReplyTo": previous_user.eventId,
            "sessionId": str(message.get("sessionId", "")), "model": "legacy",
        })
    return new_event("MessageReceived", event_id=derive_id("legacy", message["messageId"]), **base, payload={
        "content": str(message.get("content", "")),
        "externalId": (message.get("metadata") or {}).get("externalId") or message["messageId"],
        "replyTo": {IMPORTED: "legacy"},
    })


async def import_legacy(scan: TableScan, store: EventLog, messages_table: str, sessions_table: str | None = None) -> ImportReport:
    """Append every legacy message not yet in the log; idempotent. `scan(TableName=…, …)`: every
    item of a legacy table (a DynamoDB Scan's parameters)."""
    report = ImportReport()
    locations: dict[str, str] = {}
    if sessions_table:
        sessions = await scan(TableName=sessions_table, ProjectionExpression="sessionId, locationId")
        locations = {s["sessionId"]: s["locationId"] for s in sessions if s.get("locationId")}
    for (_, _), items in sorted(conversations(await scan(TableName=messages_table)).items()):
        previous_user: Event | None = None
        for message in items:
            report.messages += 1
            event = legacy_event(message, previous_user, locations.get(str(message.get("sessionId"))))
            if event is None:
                report.skipped += 1
                continue
            key = reply_key(previous_user.eventId) if event.type == "ReplyGenerated" and previous_user else keys.legacy(message['messageId'])
            result = await store.append(event, external_id=key)
            report.duplicates += result.duplicate
            report.appended += not result.duplicate
            previous_user = result.event if event.type == "MessageReceived" else None
    return report
