"""Closed days (holidays) in what the model reads: the time context of a message on a closed day
says the business is closed today (with the holiday's name when the business info gives one) and
when it opens next; the day a customer asks about says it is closed; nothing is booked on one."""

from __future__ import annotations

from datetime import datetime, timezone

from agentstream.adapters.memory_stores import memory_stores
from agentstream.events import new_event
from agentstream.projections.booking_rules import rules_of
from agentstream.projections.context import build_prompt
from agentstream.projections.offline import offline_reply
from agentstream.projections.timecontext import describe, time_context
from agentstream.streams.booking_context import with_free_slots
from agentstream.streams.reply_policy import reply_context

HOURS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
INFO = {"businessId": "salon", "timezone": "Europe/Bucharest", "language": "ro", "openingHours": HOURS,
        "slotMinutes": 60, "bookingCapacity": 1,
        "closedDays": [{"date": "2030-12-25", "name": "Crăciun"}, "2030-12-26"]}
CHRISTMAS = datetime(2030, 12, 25, 8, 0, tzinfo=timezone.utc)  # 10:00 in Bucharest, a Wednesday
STATES = {"conversation": {}, "appointments": None}


def said(text: str, at: datetime = CHRISTMAS):
    return new_event("MessageReceived", business_id="salon", user_id="ana", channel="rest", payload={"content": text},
                     occurred_at=at).with_seq(1)


def system_prompt(text: str, info: dict = INFO, at: datetime = CHRISTMAS) -> str:
    return build_prompt(reply_context(said(text, at), STATES, info, "", []))[0]["content"]


def test_on_a_named_closed_day_the_time_context_says_closed_today_and_when_it_opens() -> None:
    sent = system_prompt("Bună ziua, sunteți deschiși azi?")
    assert ("It is 10:00 (morning) on Wednesday, 2030-12-25, local time (Europe/Bucharest). "
            "We are closed today (a closed day: Crăciun); we open on Friday at 09:00.") in sent
    assert "We are open" not in sent
    assert "Closed days (holidays, nothing is booked): 2030-12-25 (Crăciun), 2030-12-26." in sent


def test_an_unnamed_closed_day_says_so_too_and_an_ordinary_day_is_as_before() -> None:
    boxing_day = datetime(2030, 12, 26, 8, 0, tzinfo=timezone.utc)
    assert "We are closed today (a closed day); we open tomorrow at 09:00." in system_prompt("Bună", at=boxing_day)
    ordinary = datetime(2030, 12, 24, 8, 0, tzinfo=timezone.utc)
    assert "We are open until 18:00." in system_prompt("Bună", at=ordinary)
    plain = time_context(ordinary, "Europe/Bucharest", HOURS)
    assert time_context(ordinary, "Europe/Bucharest", HOURS, {"2030-12-25": "Crăciun"}) == plain


def test_the_time_context_in_romanian_and_the_offline_responder_on_a_closed_day() -> None:
    tc = time_context(CHRISTMAS, "Europe/Bucharest", HOURS, {"2030-12-25": "Crăciun", "2030-12-26": ""})
    assert not tc.is_open and tc.closed_today == "Crăciun" and tc.opens_next == {"day": "friday", "time": "09:00", "in_days": 2}
    assert describe(tc, "ro").endswith("Astăzi suntem închiși (zi liberă: Crăciun); deschidem vineri la 09:00.")
    answer = offline_reply(reply_context(said("Sunteți deschiși acum?"), STATES, INFO, "", []))
    assert "Astăzi suntem închiși (zi liberă: Crăciun); deschidem vineri la 09:00." in answer, answer


async def test_the_day_asked_about_is_named_as_closed_and_is_never_bookable() -> None:
    store, _ = memory_stores()
    asking = said("Aș vrea o programare pe 25.12.2030 la 10", at=datetime(2030, 12, 20, 8, 0, tzinfo=timezone.utc))
    ctx = reply_context(asking, STATES, INFO, "", [])
    sent = build_prompt(await with_free_slots(store, ctx, asking, INFO, asking.occurredAt))[0]["content"]
    assert "2030-12-25 (Wednesday) is a closed day (holiday: Crăciun): nothing can be booked." in sent
    rules = rules_of(INFO)
    at = datetime(2030, 12, 25, 10, 0, tzinfo=rules.zone)
    assert rules.refusal(at, 60, asking.occurredAt) == "2030-12-25 is a closed day" and rules.day_starts(at.date()) == []
