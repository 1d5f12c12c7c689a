"""The prompt's bookings: the customer's appointments, and the free times of the day asked about,
recorded for explain so the prompt is rebuilt as it was sent."""

from __future__ import annotations

from datetime import datetime, timezone

from agentstream.adapters.memory_stores import memory_stores
from agentstream.events import new_event
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.timecontext import time_context
from agentstream.streams.booking_context import recorded_free_slots, with_free_slots

INFO = {"businessId": "salon", "timezone": "Europe/Bucharest", "slotMinutes": 60, "bookingCapacity": 1,
        "openingHours": {"thu": [["09:00", "12:00"]]}, "closedDays": ["2030-01-11"]}
AT = datetime(2030, 1, 7, 8, 0, tzinfo=timezone.utc)


def ask(text: str):
    return new_event("MessageReceived", business_id="salon", user_id="ana", channel="rest", payload={"content": text},
                     occurred_at=AT).with_seq(1)


def ctx_of(inbound) -> ReplyContext:
    return ReplyContext(INFO, "", [], {}, time_context(AT, INFO["timezone"], INFO["openingHours"]),
                        inbound.payload.content, "ro", inbound.eventId)


async def test_the_free_times_of_the_day_asked_about_are_in_the_prompt_and_explain_reads_them_back():
    store, _ = memory_stores()
    await store.set_side("salon", "slot:2030-01-10T10:00", {"held": 1})
    inbound = ask("Puteți să mă programați pe 10.01.2030 la 10?")
    sent = build_prompt(await with_free_slots(store, ctx_of(inbound), inbound, INFO, AT))[0]["content"]
    assert "Free appointment times on 2030-01-10 (Thursday), local time: 09:00, 11:00." in sent
    await store.set_side("salon", "slot:2030-01-10T11:00", {"held": 1})  # booked by someone else later
    again = build_prompt(await recorded_free_slots(store, ctx_of(inbound), inbound))[0]["content"]
    assert again == sent


async def test_a_closed_day_says_so_and_a_message_about_no_day_adds_nothing():
    store, _ = memory_stores()
    inbound = ask("Aș vrea o programare pe 11.01.2030 la 10")
    sent = build_prompt(await with_free_slots(store, ctx_of(inbound), inbound, INFO, AT))[0]["content"]
    assert "2030-01-11 (Friday) is a closed day (holiday): nothing can be booked." in sent
    plain = ask("Bună ziua, cât costă tunsul?")
    assert build_prompt(await with_free_slots(store, ctx_of(plain), plain, INFO, AT)) == build_prompt(ctx_of(plain))


def test_the_closed_days_of_the_month_ahead_are_in_the_prompt():
    from agentstream.streams.reply_policy import reply_context

    inbound = ask("Bună ziua")
    info = INFO | {"closedDays": ["2030-01-06", "2030-01-11", "2030-03-01"]}
    states = {"conversation": {}, "appointments": None}
    sent = build_prompt(reply_context(inbound, states, info, "", []))[0]["content"]
    assert "Closed days (holidays, nothing is booked): 2030-01-11." in sent
