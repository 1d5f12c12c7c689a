"""The offline responder and the prompt both use the context a customer expects."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from agentstream.events import new_event
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.conversation import FoldConfig, fold
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
    return ReplyContext(business, "Instrucțiuni", rag or [], memory,
                        time_context(at, business["timezone"], business["openingHours"]),
                        texts[-1], detect_language(texts[-1]), events[-1].eventId)


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
