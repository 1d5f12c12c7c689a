"""The built-in offline responder: a deterministic answer from the context, no model needed.

It answers in the customer's language, greets by the time of day, names the business, answers
questions about opening hours (and prices or services) from the context, follows up on the
earlier turn of the session and offers the business's contact details.
"""

from __future__ import annotations

from typing import Any

from agentstream.projections.context import ReplyContext
from agentstream.projections.timecontext import DAYS, WEEKDAYS, TimeContext, day_name, when_opens
from agentstream.projections.topics import detect_language, extract_topics, words

HOURS_PREFIXES = ("deschi", "inchid", "inchis", "open", "clos")
HOURS_WORDS = frozenset({"program", "programul", "orar", "orarul", "hours", "hour", "nonstop"})
HOURS_PHRASES = ("ce ora", "ce ore", "cat timp", "pana cand", "what time", "how late", "until when")
TOMORROW_WORDS = frozenset({"maine", "tomorrow"})
SERVICE_WORDS = frozenset({"pret", "preturi", "pretul", "cost", "costa", "costuri", "tarif", "tarife", "servicii",
                           "serviciile", "meniu", "meniul", "price", "prices", "menu", "services", "service"})
MAX_SERVICES = 5
GREETING = {
    "ro": {"morning": "Bună dimineața", "afternoon": "Bună ziua", "evening": "Bună seara", "night": "Bună seara"},
    "en": {"morning": "Good morning", "afternoon": "Good afternoon", "evening": "Good evening", "night": "Good evening"},
}


def reply_language(ctx: ReplyContext) -> str:
    """The message's language; the business's (or the context's) when the message does not say."""
    fallback = str(ctx.business.get("language") or ctx.language)
    lang = detect_language(ctx.message, default=fallback)
    return lang if lang in GREETING else "en"


def asks_hours(message: str) -> bool:
    """The message asks when the business is open or closes."""
    found = words(message)
    padded = f" {' '.join(found)} "
    return (any(w in HOURS_WORDS or w.startswith(HOURS_PREFIXES) for w in found)
            or any(f" {p} " in padded for p in HOURS_PHRASES))


def asks_tomorrow(ctx: ReplyContext) -> bool:
    """The message asks about tomorrow: directly, or as a follow-up ("Și mâine?") to a question
    about the hours."""
    if TOMORROW_WORDS.isdisjoint(words(ctx.message)):
        return False
    earlier = [t for t in ctx.earlier_turns() if t.get("role") == "user"]
    return asks_hours(ctx.message) or bool(earlier and asks_hours(str(earlier[-1].get("content", ""))))


def tomorrow_answer(ctx: ReplyContext, lang: str) -> str:
    """Tomorrow's opening hours in the business's time zone, from its weekly hours."""
    day = (WEEKDAYS.index(ctx.time.weekday) + 1) % 7
    hours = (ctx.business.get("openingHours") or {}).get(DAYS[day]) or []
    spans = ", ".join(f"{span[0]}–{span[1]}" for span in hours if len(span) == 2)
    name = day_name(WEEKDAYS[day], lang)
    if lang == "ro":
        return f"Mâine ({name}) avem program {spans}." if spans else f"Mâine ({name}) suntem închiși."
    return f"Tomorrow ({name}) we are open {spans}." if spans else f"Tomorrow ({name}) we are closed."


def asks_services(message: str) -> bool:
    return not SERVICE_WORDS.isdisjoint(words(message))


def hours_answer(tc: TimeContext, lang: str) -> str:
    """Open now and until when, or when it opens next."""
    ro = lang == "ro"
    if tc.is_open and tc.closes_at:
        return f"Acum suntem deschiși, până la ora {tc.closes_at}." if ro else f"We are open now, until {tc.closes_at}."
    if tc.is_open:
        return "Suntem deschiși non-stop." if ro else "We are open around the clock."
    if tc.opens_next:
        when = when_opens(tc.opens_next, lang)
        return f"Acum suntem închiși; deschidem {when}." if ro else f"We are closed right now; we open {when}."
    return "Momentan nu avem un program stabilit." if ro else "We have no opening hours set at the moment."


def follow_up(ctx: ReplyContext, lang: str) -> str:
    """A reference to the customer's earlier message in this session, if there is one."""
    earlier = [t for t in ctx.earlier_turns() if t.get("role") == "user"]
    if not earlier:
        return ""
    topics = extract_topics(str(earlier[-1].get("content", "")), limit=2)
    if lang == "ro":
        about = f" despre {' și '.join(topics)}" if topics else ""
        return f"Revenind la mesajul dumneavoastră anterior{about}: vă ajutăm cu plăcere."
    about = f" about {' and '.join(topics)}" if topics else ""
    return f"Following up on your earlier message{about}: we are happy to help."


def services_answer(business: dict[str, Any], lang: str) -> str:
    services = [str(s) for s in business.get("services") or []][:MAX_SERVICES]
    if not services:
        return ""
    return ("Serviciile noastre: " if lang == "ro" else "We offer: ") + ", ".join(services) + "."


def generic_answer(tc: TimeContext, lang: str) -> str:
    """A helpful answer for anything else (with when we are back, if closed)."""
    if lang == "ro":
        text = "Vă mulțumim pentru mesaj! Vă ajutăm cu plăcere cu informații și programări."
    else:
        text = "Thank you for your message! We are happy to help with information and bookings."
    return text if tc.is_open else f"{text} {hours_answer(tc, lang)}"


def contact(business: dict[str, Any], lang: str) -> str:
    phone, address = business.get("phone"), business.get("address")
    if lang == "ro":
        text = "Pentru programări ne puteți scrie aici" + (f" sau ne puteți suna la {phone}" if phone else "") + "."
        return text + (f" Ne găsiți la {address}." if address else "")
    text = "To book, write to us here" + (f" or call {phone}" if phone else "") + "."
    return text + (f" You can find us at {address}." if address else "")


def offline_reply(ctx: ReplyContext) -> str:
    """A reply that uses the context: language, time of day, opening hours (today's or
    tomorrow's), earlier turns."""
    lang = reply_language(ctx)
    name = ctx.business.get("name") or ("echipa noastră" if lang == "ro" else "our team")
    greeting = GREETING[lang][ctx.time.part_of_day]
    intro = f"{greeting}! Aici {name}." if lang == "ro" else f"{greeting}! This is {name}."
    if asks_tomorrow(ctx):
        answers = [tomorrow_answer(ctx, lang)]
    else:
        answers = [hours_answer(ctx.time, lang)] if asks_hours(ctx.message) else []
    if asks_services(ctx.message):
        answers.append(services_answer(ctx.business, lang))
    if not any(answers):
        answers = [generic_answer(ctx.time, lang)]
    parts = [intro, follow_up(ctx, lang), *answers, contact(ctx.business, lang)]
    return " ".join(p for p in parts if p)
