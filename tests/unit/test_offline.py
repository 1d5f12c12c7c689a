"""The offline responder and the prompt both use the context a customer expects."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from agentstream.events import new_event
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.conversation import FoldConfig, fold
from agentstream.projections.facts import apply_facts, current_facts, empty_facts
from agentstream.projections.offline import offline_reply
from agentstream.projections.timecontext import time_context
from agentstream.projections.topics import detect_language

DATA = Path(__file__).resolve().parents[2] / "agentstream" / "data" / "businesses.json"
SALON, RESTAURANT = json.loads(DATA.read_text(encoding="utf-8"))


def context(business: dict, texts: list[str], at: datetime, rag: list[dict] | None = None) -> ReplyContext:
    events = [new_event("MessageReceived", business_id=business["businessId"], user_id="u", channel="websocket",
                        payload={"content": t}, occurred_at=at, event_id=f"e{i}").with_seq(i + 1)
              for i, t in enumerate(texts)]
    memory = fold(events, FoldConfig(), business["businessId"], "u")[0]
    facts = empty_facts(business["businessId"], "u")
    for event in events:
        facts = apply_facts(facts, event, business["timezone"])
    return ReplyContext(business, "Instrucțiuni", rag or [], memory,
                        time_context(at, business["timezone"], business["openingHours"]),
                        texts[-1], detect_language(texts[-1]), events[-1].eventId, facts=current_facts(facts, at))


def test_salon_closing_question_at_lunch_time_in_romanian() -> None:
    reply = offline_reply(context(SALON, ["Buna ziua, la ce ora inchideti azi?"], datetime(2026, 11, 24, 10, 30, tzinfo=timezone.utc)))
    assert "13:00" in reply and "Bună ziua" in reply and "Salon Ana" in reply


def test_salon_on_sunday_says_when_it_opens() -> None:
    reply = offline_reply(context(SALON, ["Sunteți deschiși azi?"], datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)))
    assert "închiși" in reply and "09:00" in reply and "mâine" in reply


def test_restaurant_after_midnight_in_english() -> None:
    reply = offline_reply(context(RESTAURANT, ["Are you open? What time do you close?"], datetime(2026, 11, 25, 1, 30, tzinfo=timezone.utc)))
    assert "02:00" in reply and "Good evening" in reply and "Night Owl" in reply


def test_follow_up_mentions_the_earlier_turn() -> None:
    ctx = context(SALON, ["Vreau o programare pentru vopsit", "Și cât costă?"], datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc))
    assert "vopsit" in offline_reply(ctx)


def test_prompt_has_instructions_time_turns_and_message_within_budget() -> None:
    rag = [{"key": f"k{i}", "content": "x" * 500} for i in range(30)]
    ctx = context(SALON, ["Vreau o programare", "Mâine la 10 se poate?"], datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), rag)
    messages = build_prompt(ctx, budget_chars=4000)
    system = messages[0]["content"]
    assert messages[0]["role"] == "system" and "Instrucțiuni" in system and "open until 13:00" in system
    assert [m["content"] for m in messages[1:]] == ["Vreau o programare", "Mâine la 10 se poate?"]
    assert sum(len(m["content"]) for m in messages) <= 4500
    assert "k29" in system and "k0:" not in system, "the oldest RAG entries are dropped first"


def test_and_tomorrow_after_an_hours_question_gives_tomorrows_hours() -> None:
    tuesday_lunch = datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)
    reply = offline_reply(context(SALON, ["La ce oră închideți azi?", "Și mâine?"], tuesday_lunch))
    assert "Mâine (miercuri) avem program 09:00–13:00, 14:00–19:00." in reply
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    assert "Mâine (duminică) suntem închiși." in offline_reply(context(SALON, ["Sunteți deschiși mâine?"], saturday))
    english = offline_reply(context(RESTAURANT, ["When do you open?", "And tomorrow?"], saturday))
    assert "Tomorrow (Sunday) we are open 12:00–23:00." in english
    assert "Mâine" not in offline_reply(context(SALON, ["Vreau o programare mâine"], tuesday_lunch)), "not an hours question"


TUESDAY = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)  # 10:00 in Bucharest, 08:00 in London


def test_a_known_customer_is_greeted_by_name() -> None:
    reply = offline_reply(context(SALON, ["Bună, mă numesc Ana", "Aveți manichiură?"], TUESDAY))
    assert reply.startswith("Bună dimineața, Ana! Aici Salon Ana.")
    evening = datetime(2026, 11, 24, 19, 0, tzinfo=timezone.utc)
    assert offline_reply(context(RESTAURANT, ["Hi, I'm John", "Do you have vegan dishes?"], evening)).startswith(
        "Good evening, John! This is The Night Owl Kitchen.")
    assert offline_reply(context(SALON, ["Sunt bine, mersi"], TUESDAY)).startswith("Bună dimineața! Aici")


def test_the_requested_appointment_is_restated_never_confirmed() -> None:
    reply = offline_reply(context(SALON, ["Si maine? Ma numesc Ana, telefonul meu e 0722 123 456",
                                          "Puteti sa ma programati joi la 10 pentru tuns?"], TUESDAY))
    assert reply.startswith("Bună dimineața, Ana!")
    assert ("Am notat cererea dumneavoastră pentru tuns joi, 26 noiembrie, la ora 10:00; salonul este deschis atunci. "
            "Un coleg vă va confirma programarea.") in reply
    assert "numesc" not in reply and "telefonul" not in reply, "the follow-up echoes no non-topics"
    for said in ("confirmat", "am făcut programarea", "v-am programat", "booked", "is confirmed"):
        assert said not in reply.lower()


def test_a_request_when_the_business_is_closed_says_so() -> None:
    sunday = offline_reply(context(SALON, ["Vreau o programare duminică la 11"], TUESDAY))
    assert "duminică, 29 noiembrie, la ora 11:00; suntem închiși atunci. Un coleg vă va propune o altă oră." in sunday
    lunch = offline_reply(context(SALON, ["O programare la vopsit mâine la 13:30?"], TUESDAY))
    assert "pentru vopsit miercuri, 25 noiembrie, la ora 13:30; suntem închiși atunci." in lunch
    day_only = offline_reply(context(SALON, ["Vreau o programare luni"], TUESDAY))
    assert "de programare pentru luni, 30 noiembrie; salonul este deschis în acea zi." in day_only
    table = offline_reply(context(RESTAURANT, ["Can I book a table for 4 tomorrow at 7pm?"], TUESDAY))
    assert ("I have noted your booking request (table for 4) for Wednesday, 25 November, at 19:00; we are open then. "
            "A colleague will confirm your booking.") in table


def test_only_this_messages_request_is_restated() -> None:
    reply = offline_reply(context(SALON, ["Programare joi la 10 pentru tuns", "Mulțumesc!"], TUESDAY))
    assert "Am notat" not in reply and "Vă mulțumim pentru mesaj" in reply


def test_a_stated_language_preference_is_followed() -> None:
    assert "This is Salon Ana" in offline_reply(context(SALON, ["Bună ziua! Vorbiți engleză?"], TUESDAY))


def test_the_prompt_says_what_we_know_and_drops_it_before_memory() -> None:
    ctx = context(SALON, ["Bună, sunt Ana Popescu, telefon 0722 123 456",
                          "Puteti sa ma programati joi la 10 pentru tuns?"], TUESDAY)
    system = build_prompt(ctx)[0]["content"]
    assert ("What we know about the customer:\n"
            "- appointment: tuns on 2026-11-26 at 10:00 (requested, not confirmed) (said by the customer, 2026-11-24)\n"
            "- name: Ana Popescu (said by the customer, 2026-11-24)\n"
            "- phone: +40722123456 (said by the customer, 2026-11-24)") in system
    assert system.index("Business information") < system.index("What we know") < system.index("Customer memory")
    memory = system[system.index("Customer memory"):]
    business = system[system.index("Business information"):system.index("What we know") - 2]
    everything = sum(len(m["content"]) for m in build_prompt(ctx))
    earlier_turn = len("Bună, sunt Ana Popescu, telefon 0722 123 456")
    squeezed = build_prompt(ctx, budget_chars=everything - earlier_turn - len(business) - 60)[0]["content"]
    assert memory in squeezed, "memory is kept whole while business info and then the facts are shortened"
    assert "Business information" not in squeezed and "- name: Ana Popescu" in squeezed
    assert "- phone: +40722123456 (said" not in squeezed
