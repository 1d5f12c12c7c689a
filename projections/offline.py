"""The built-in offline responder: a deterministic answer from the context, no model needed.

It answers in the customer's language (a stated preference first), greets by the time of day and
by name when the customer told us theirs, names the business, answers questions about opening
hours (and prices or services) from the context, restates an appointment the message asked for
(with whether the business is open then — it never says the booking is made), follows up on the
earlier turn of the session and offers the business's contact details.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from agentstream.projections.booking_prompt import APPOINTMENTS
from agentstream.projections.booking_rules import closed_days_of, rules_of
from agentstream.projections.booking_texts import appointment_line
from agentstream.projections.context import ReplyContext
from agentstream.projections.media_notes import acknowledgement
from agentstream.projections.timecontext import (
    DAYS, WEEKDAYS, TimeContext, closed_today_status, day_name, time_context, when_opens,
)
from agentstream.projections.topics import detect_language, extract_topics, words

MY_BOOKING_PHRASES = ("ce programare am", "ce programari am", "programarea mea", "cand am programare",
                      "am vreo programare", "my booking", "my appointment", "my appointments", "my bookings",
                      "my reservation", "when is my", "do i have an appointment", "do i have a booking")
HOURS_PREFIXES = ("deschi", "inchid", "inchis", "open", "clos")
HOURS_WORDS = frozenset({"program", "programul", "orar", "orarul", "hours", "hour", "nonstop"})
HOURS_PHRASES = ("ce ora", "ce ore", "cat timp", "pana cand", "what time", "how late", "until when")
TOMORROW_WORDS = frozenset({"maine", "tomorrow"})
SERVICE_WORDS = frozenset({"pret", "preturi", "pretul", "cost", "costa", "costuri", "tarif", "tarife", "servicii",
                           "serviciile", "meniu", "meniul", "price", "prices", "menu", "services", "service"})
MAX_SERVICES = 5
MONTH_NAMES = {
    "ro": ("ianuarie", "februarie", "martie", "aprilie", "mai", "iunie", "iulie", "august", "septembrie",
           "octombrie", "noiembrie", "decembrie"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
OPEN_THEN = {"salon": "salonul este deschis", "restaurant": "restaurantul este deschis",
             "clinic": "clinica este deschisă"}
GREETING = {
    "ro": {"morning": "Bună dimineața", "afternoon": "Bună ziua", "evening": "Bună seara", "night": "Bună seara"},
    "en": {"morning": "Good morning", "afternoon": "Good afternoon", "evening": "Good evening", "night": "Good evening"},
}


def _fact(ctx: ReplyContext, kind: str) -> Any:
    """The value of the customer's current fact of a single-valued kind, or None."""
    return next((f["value"] for f in ctx.facts if f["kind"] == kind), None)


def reply_language(ctx: ReplyContext) -> str:
    """The customer's stated preference; else the message's language; the business's (or the
    context's) when the message does not say."""
    preferred = _fact(ctx, "language")
    if preferred in GREETING:
        return str(preferred)
    fallback = str(ctx.business.get("language") or ctx.language)
    lang = detect_language(ctx.extra.get("said", ctx.message), default=fallback)  # the customer's words, not notes about files
    return lang if lang in GREETING else "en"


def requested_appointment(ctx: ReplyContext) -> dict[str, Any] | None:
    """The appointment the current message asked for (a current fact from this message), if any."""
    found = [f["value"] for f in ctx.facts
             if f["kind"] == "appointment" and f["sourceEventId"] == ctx.inbound_event_id]
    return found[-1] if found else None


def _open_then(business: dict[str, Any], at: str) -> bool:
    """The business is open at the appointment's time (any time that day, for a day only)."""
    hours, closed = business.get("openingHours") or {}, closed_days_of(business)
    if len(at) == 10:
        return at not in closed and bool(hours.get(DAYS[date.fromisoformat(at).weekday()]))
    return time_context(datetime.fromisoformat(at), str(business.get("timezone") or "UTC"), hours, closed).is_open


def appointment_answer(business: dict[str, Any], appointment: dict[str, Any], lang: str) -> str:
    """'Am notat cererea dumneavoastră pentru tuns joi, 26 noiembrie, la ora 10:00; salonul este
    deschis atunci. Un coleg vă va confirma programarea.' — a request noted, never a booking made."""
    at, service = str(appointment["at"]), appointment.get("service")
    day = date.fromisoformat(at[:10])
    name, month = day_name(WEEKDAYS[day.weekday()], lang), MONTH_NAMES[lang][day.month - 1]
    is_open, day_only = _open_then(business, at), len(at) == 10
    if lang == "ro":
        what = f"pentru {service}" if service else "de programare pentru"
        when = f"{name}, {day.day} {month}" + ("" if day_only else f", la ora {at[11:16]}")
        open_then = OPEN_THEN.get(str(business.get("businessType")), "suntem deschiși")
        state = open_then if is_open else "suntem închiși"
        then = "în acea zi" if day_only else "atunci"
        ending = "Un coleg vă va confirma programarea." if is_open else "Un coleg vă va propune o altă oră."
        return f"Am notat cererea dumneavoastră {what} {when}; {state} {then}. {ending}"
    what = f" ({service})" if service else ""
    when = f"{name}, {day.day} {month}" + ("" if day_only else f", at {at[11:16]}")
    state = ("we are open" if is_open else "we are closed") + (" that day" if day_only else " then")
    ending = "A colleague will confirm your booking." if is_open else "A colleague will suggest another time."
    return f"I have noted your booking request{what} for {when}; {state}. {ending}"


def asks_my_booking(message: str) -> bool:
    """The customer asks which appointment they have ("ce programare am?", "what is my booking?")."""
    padded = f" {' '.join(words(message))} "
    return any(f" {p} " in padded for p in MY_BOOKING_PHRASES)


def my_bookings_answer(appointments: list[dict[str, Any]], lang: str) -> str:
    """The customer's appointments, each with its status stated plainly (a request is not a booking)."""
    shown = [a for a in appointments if a["status"] in ("requested", "proposed", "confirmed")]
    if not shown:
        return "Nu aveți nicio programare la noi." if lang == "ro" else "You have no appointment with us."
    lines = "; ".join(appointment_line(a, lang) for a in shown)
    if lang == "ro":
        return f"Programările dumneavoastră: {lines}."
    return f"Your appointments: {lines}."


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
    if tc.closed_today is not None:
        return closed_today_status(tc, lang)
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
    rules = rules_of(ctx.business)  # only what the business offers is named back, never a stray word
    topics = [t for t in extract_topics(str(earlier[-1].get("content", "")), limit=5) if rules.service(t)][:2]
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
    """A reply that uses the context: language, time of day, the customer's name, the requested
    appointment, opening hours (today's or tomorrow's), earlier turns."""
    lang = reply_language(ctx)
    name = ctx.business.get("name") or ("echipa noastră" if lang == "ro" else "our team")
    greeting = GREETING[lang][ctx.time.part_of_day]
    customer = _fact(ctx, "name")
    greeting += f", {customer}!" if customer else "!"
    intro = f"{greeting} Aici {name}." if lang == "ro" else f"{greeting} This is {name}."
    appointment = requested_appointment(ctx)
    if asks_my_booking(ctx.message):
        answers = [my_bookings_answer(ctx.extra.get(APPOINTMENTS) or [], lang)]
    elif appointment:
        answers = [appointment_answer(ctx.business, appointment, lang)]
    elif asks_tomorrow(ctx):
        answers = [tomorrow_answer(ctx, lang)]
    else:
        answers = [hours_answer(ctx.time, lang)] if asks_hours(ctx.message) else []
    if asks_services(ctx.message):
        answers.append(services_answer(ctx.business, lang))
    if not any(answers):
        answers = [generic_answer(ctx.time, lang)]
    parts = [intro, acknowledgement(ctx.extra.get("files", []), lang), follow_up(ctx, lang), *answers, contact(ctx.business, lang)]
    return " ".join(p for p in parts if p)
