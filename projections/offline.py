"""The built-in offline responder: a deterministic answer from the context, no model needed.

It answers in the customer's language, greets by the time of day, answers questions about
opening hours from the time context, follows up on the earlier turn of the session and
offers the business's contact details.
"""

from __future__ import annotations

from agentstream.projections.context import ReplyContext
from agentstream.projections.timecontext import DAY_NAMES, DAYS, TimeContext
from agentstream.projections.topics import extract_topics, fold_text

HOURS_WORDS = ("ora", "ore", "orar", "program", "inchide", "inchideti", "deschis", "deschide", "deschideti",
               "open", "close", "closing", "hours", "when", "cand")
GREETING = {
    "ro": {"morning": "Bună dimineața", "afternoon": "Bună ziua", "evening": "Bună seara", "night": "Bună seara"},
    "en": {"morning": "Good morning", "afternoon": "Good afternoon", "evening": "Good evening", "night": "Good evening"},
}


def _asks_hours(message: str) -> bool:
    words = set(fold_text(message).replace("?", " ").split())
    return any(w in words or any(x.startswith(w) for x in words) for w in HOURS_WORDS)


def _next_opening(tc: TimeContext, lang: str) -> str:
    opens = tc.opens_next
    if not opens:
        return "momentan nu avem program stabilit" if lang == "ro" else "we have no opening hours set at the moment"
    days = int(opens["in_days"])  # type: ignore[arg-type]
    name = DAY_NAMES[lang][DAYS.index(str(opens["day"]))]
    if lang == "ro":
        when = "azi" if days == 0 else "mâine" if days == 1 else name
        return f"acum suntem închiși; deschidem {when} la {opens['time']}"
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"on {name}"
    return f"we are closed right now; we open {when} at {opens['time']}"


def _hours_answer(tc: TimeContext, lang: str) -> str:
    if tc.is_open:
        if lang == "ro":
            return f"Acum suntem deschiși, până la ora {tc.closes_at}."
        return f"We are open now, until {tc.closes_at}."
    text = _next_opening(tc, lang)
    return text[0].upper() + text[1:] + "."


def _follow_up(ctx: ReplyContext, lang: str) -> str:
    earlier = [t for t in ctx.earlier_turns() if t.get("role") == "user"]
    if not earlier:
        return ""
    topics = extract_topics(earlier[-1]["content"], limit=2)
    about = " ".join(topics) if topics else ("acesta" if lang == "ro" else "it")
    if lang == "ro":
        return f"Revenind la mesajul dumneavoastră anterior despre {about}: suntem aici să vă ajutăm. "
    return f"Following up on your earlier message about {about}: we are happy to help. "


def _contact(ctx: ReplyContext, lang: str) -> str:
    phone = ctx.business.get("phone")
    if lang == "ro":
        return f"Pentru programări ne puteți scrie aici sau suna la {phone}." if phone else "Pentru programări ne puteți scrie aici."
    return f"To book, write to us here or call {phone}." if phone else "To book, just write to us here."


def offline_reply(ctx: ReplyContext) -> str:
    """A reply that uses the context: language, time of day, opening hours, earlier turns."""
    lang = ctx.language if ctx.language in GREETING else "en"
    name = ctx.business.get("name") or ("salonul nostru" if lang == "ro" else "our team")
    greeting = GREETING[lang][ctx.time.part_of_day]
    intro = f"{greeting}! Aici {name}." if lang == "ro" else f"{greeting}! This is {name}."
    parts = [intro, _follow_up(ctx, lang).strip()]
    if _asks_hours(ctx.message):
        parts.append(_hours_answer(ctx.time, lang))
    else:
        parts.append("Vă mulțumim pentru mesaj." if lang == "ro" else "Thank you for your message.")
        parts.append(_hours_answer(ctx.time, lang))
    parts.append(_contact(ctx, lang))
    return " ".join(p for p in parts if p)
