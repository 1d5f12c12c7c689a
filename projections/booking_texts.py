"""What the customer and the owner read about an appointment (pure): its time in the business's
zone and language ("joi, 10 ianuarie, la 10:00" / "Thursday, 10 January at 10:00"), and the
messages a proposal, a confirmation, a decline or a cancellation sends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentstream.projections.timecontext import DAY_NAMES

MONTH_NAMES = {
    "ro": ("ianuarie", "februarie", "martie", "aprilie", "mai", "iunie", "iulie", "august", "septembrie",
           "octombrie", "noiembrie", "decembrie"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}

STATUS_NAMES = {
    "ro": {"requested": "cerută, neconfirmată", "proposed": "oră propusă, așteaptă răspuns", "confirmed": "confirmată",
           "declined": "refuzată", "cancelled": "anulată", "no-show": "neprezentat", "done": "încheiată"},
    "en": {"requested": "requested, not confirmed", "proposed": "another time proposed, awaiting an answer",
           "confirmed": "confirmed", "declined": "declined", "cancelled": "cancelled", "no-show": "no-show", "done": "done"},
}


def lang_of(language: str | None) -> str:
    return "ro" if (language or "").lower().startswith("ro") else "en"


def when_text(at: str, language: str | None) -> str:
    """A local ISO time (or a date) as the customer reads it."""
    lang = lang_of(language)
    moment = datetime.fromisoformat(at) if len(at) > 10 else datetime.fromisoformat(at + "T00:00")
    day = f"{DAY_NAMES[lang][moment.weekday()]}, {moment.day} {MONTH_NAMES[lang][moment.month - 1]}"
    if len(at) <= 10:
        return day
    return f"{day}, la {moment:%H:%M}" if lang == "ro" else f"{day} at {moment:%H:%M}"


def _what(appointment: dict[str, Any], lang: str) -> str:
    service = appointment.get("service")
    if lang == "ro":
        return f"programarea pentru {service}" if service else "programarea"
    return f"your {service} appointment" if service else "your appointment"


def proposed_text(appointment: dict[str, Any], at: str, language: str | None) -> str:
    lang = lang_of(language)
    if lang == "ro":
        return (f"Pentru {_what(appointment, lang)} vă putem primi {when_text(at, lang)}. "
                "Răspundeți „da” pentru a confirma sau „anulez” pentru a renunța.")
    return f"For {_what(appointment, lang)} we can see you {when_text(at, lang)}. Reply \"yes\" to confirm or \"cancel\" to cancel."


def confirmed_text(appointment: dict[str, Any], at: str, language: str | None) -> str:
    lang = lang_of(language)
    if lang == "ro":
        what = _what(appointment, lang)
        return f"{what[0].upper()}{what[1:]} este confirmată: {when_text(at, lang)}. Vă așteptăm!"
    what = _what(appointment, lang)
    return f"{what[0].upper()}{what[1:]} is confirmed: {when_text(at, lang)}. See you then!"


def declined_text(appointment: dict[str, Any], language: str | None) -> str:
    lang = lang_of(language)
    when = when_text(appointment["at"], lang)
    if lang == "ro":
        return f"Ne pare rău, nu vă putem primi {when}. Scrieți-ne dacă doriți altă oră."
    return f"Sorry, we cannot see you {when}. Write to us if you would like another time."


def cancelled_text(appointment: dict[str, Any], language: str | None, by: str) -> str:
    lang = lang_of(language)
    when = when_text(appointment["at"], lang)
    if lang == "ro":
        what = _what(appointment, lang)
        return f"{what[0].upper()}{what[1:]} din {when} a fost anulată." if by != "customer" else \
            f"Am anulat {what} din {when}."
    return f"We have cancelled {_what(appointment, lang)} on {when}." if by == "customer" else \
        f"{_what(appointment, lang)[0].upper()}{_what(appointment, lang)[1:]} on {when} has been cancelled."


def appointment_line(appointment: dict[str, Any], language: str | None) -> str:
    """One line for the prompt and the offline responder: service, time, status."""
    lang = lang_of(language)
    service = appointment.get("service") or ("programare" if lang == "ro" else "appointment")
    return f"{service}, {when_text(appointment['at'], lang)} ({STATUS_NAMES[lang][appointment['status']]})"
