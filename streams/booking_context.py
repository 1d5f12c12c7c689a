"""The free times a reply's prompt shows, read from the slot items when the customer's message
asks for an appointment (of a business that set up bookings: `bookingCapacity` or
`slotMinutes` in its info), and recorded beside the log under the reply's id (`prompt-slots:<id>`)
before the model is asked: the slots change with other customers' bookings, so `explain`
reads what was recorded instead of the slots as they are later."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime
from typing import Any, Protocol

from agentstream.events import MessageReceived, reply_event_id
from agentstream.projections.booking_prompt import FREE_SLOTS, free_slots_text
from agentstream.projections.booking_rules import closed_days_of, rules_of
from agentstream.projections.context import ReplyContext
from agentstream.streams.appointment_requests import requested


class SideItems(Protocol):
    async def set_side(self, business_id: str, name: str, values: dict[str, Any]) -> None: ...

    async def side(self, business_id: str, name: str) -> dict[str, Any] | None: ...


def record_name(inbound_event_id: str) -> str:
    return f"prompt-slots:{reply_event_id(inbound_event_id)}"


def takes_bookings(info: dict[str, Any]) -> bool:
    """Whether the business has set up bookings (a capacity or a slot length in its info)."""
    return "bookingCapacity" in info or "slotMinutes" in info


def asked_day(inbound: MessageReceived, info: dict[str, Any]) -> date | None:
    """The day an appointment message asks about (None: it asks for none)."""
    found = requested(inbound, str(info.get("timezone") or "UTC"))
    return date.fromisoformat(found["at"][:10]) if found else None


async def with_free_slots(store: SideItems, ctx: ReplyContext, inbound: MessageReceived, info: dict[str, Any],
                          now: datetime) -> ReplyContext:
    """`ctx` with the free times of the day asked about, recorded for explain (unchanged if none is asked)."""
    if not takes_bookings(info):
        return ctx
    day = asked_day(inbound, info)
    if day is None:
        return ctx
    rules = rules_of(info)
    names = [n for start in rules.day_starts(day) for n in rules.slots(start, rules.slot_minutes)]
    values = await asyncio.gather(*(store.side(inbound.businessId, n) for n in names))
    held = {n: int((v or {}).get("held", 0)) for n, v in zip(names, values)}
    text = free_slots_text(rules, day, held, now, closed_days_of(info))
    await store.set_side(inbound.businessId, record_name(inbound.eventId), {"text": text})
    return dataclasses.replace(ctx, extra={**ctx.extra, FREE_SLOTS: text})


async def recorded_free_slots(store: SideItems, ctx: ReplyContext, inbound: MessageReceived) -> ReplyContext:
    """`ctx` with the free times recorded when the reply was made (explain), if any were."""
    found = await store.side(inbound.businessId, record_name(inbound.eventId))
    return dataclasses.replace(ctx, extra={**ctx.extra, FREE_SLOTS: found["text"]}) if found else ctx
