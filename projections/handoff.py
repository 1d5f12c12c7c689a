"""Handing a conversation to a person: the customer's request (a pure RO/EN detector), the state
the conversation fold keeps, and the customer's notice. No I/O.

The detector is deliberately narrow: it looks for a request to talk to a person ("vreau să
vorbesc cu cineva", "un om vă rog", "a human please"), diacritics and case ignored, and not for
every sentence that mentions people; a request that is negated ("nu vreau să vorbesc cu un om",
"no need for a human") is not one.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any

Item = dict[str, Any]
DEFAULT_TIMEOUT_MINUTES = 120
OWNER_REPLIED = "owner replied"  # reason of the handoff an owner's first message implies (their message is the notice)
BUDGET_REASON = "budget"  # reason of the system's handoff when the month's model budget is spent: it never times out

_PERSON_RO = (r"(?:cineva|un om|o persoana(?: reala)?|un operator(?: uman)?|un coleg|un angajat|un consultant"
              r"|un agent(?: uman)?|un reprezentant|o fiinta umana|un om adevarat)")
_PERSON_EN = (r"(?:someone|somebody|a human(?: being)?|an? (?:real |live |actual )?(?:person|human|agent|operator"
              r"|representative|rep|employee)|a member of (?:your )?staff|your staff|customer service|support staff)")
_PATTERNS = [re.compile(p) for p in (
    # Romanian
    r"\b(?:vreau|vrem|doresc|as vrea|as dori|pot|putem|se poate) (?:sa )?(?:vorbesc|vorbim|vorbi|discut|discuta|discutam)"
    rf" (?:si )?(?:cu|la) {_PERSON_RO}\b",
    rf"\b(?:vreau|doresc|as vrea|as dori|dati-mi|da-mi|imi trebuie|am nevoie de) {_PERSON_RO}\b",
    r"\bun om,? va rog\b",
    r"\bva rog,? un om\b",
    r"\b(?:operator|agent) uman\b",
    r"\bo persoana reala\b",
    r"\b(?:transferati|legati|conectati|puneti)-?ma (?:cu|la) ",
    r"\bnu (?:vreau sa vorbesc cu|vreau) (?:un )?(?:robot|bot)\b",
    # English
    rf"\b(?:talk|speak|chat) (?:to|with) {_PERSON_EN}\b",
    rf"\b(?:i want|i need|i'd like|i would like|give me|get me|connect me (?:to|with)|transfer me to|put me through to)"
    rf" {_PERSON_EN}\b",
    r"\b(?:a |an )?human,? please\b",
    r"\bplease,? (?:a )?human\b",
    r"\b(?:real|live|actual) (?:person|human|agent)\b",
    r"\bhuman agent\b",
    r"\bnot (?:a |an |this )?(?:bot|robot|machine)\b",
)]
_NEGATION = re.compile(r"\b(?:nu|n-|don't|dont|do not|no need(?: for| to)?|never|not|fara)\W*(?:\w+\W+){0,2}$")

NOTICE = {
    "ro": "Un coleg a preluat conversația și vă va răspunde în curând.",
    "en": "A member of our team has taken over this conversation and will answer you shortly.",
}
CUSTOMER_NOTICE = {
    "ro": "Desigur, un coleg vă va răspunde în curând.",
    "en": "Of course: a member of our team will answer you shortly.",
}


def normalize(text: str) -> str:
    """Lower case, without diacritics (ş/ș, ţ/ț, ă, â, î), one space between words."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("’", "'").replace("`", "'")
    return re.sub(r"\s+", " ", plain).strip()


def wants_human(text: str) -> bool:
    """Whether a customer's message asks to talk to a person (RO or EN)."""
    plain = normalize(text)
    for pattern in _PATTERNS:
        for match in pattern.finditer(plain):
            if not _NEGATION.search(plain[: match.start()]):
                return True
    return False


def notice(language: str, by: str) -> str:
    """What the customer is told when the conversation is handed to a person."""
    texts = CUSTOMER_NOTICE if by == "customer" else NOTICE
    return texts.get(language, texts["en"])


# ---- the fold's handoff state (inside the session context) ---------------------------------


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def handoff_of(ctx: Item | None, at: datetime, timeout_minutes: int) -> Item | None:
    """The session's handoff in force at `at`, or None: none was requested, it was released, or
    the person has been silent longer than `timeout_minutes` since the handoff or their last
    message (the timeout is judged at the time of the event being folded)."""
    handoff = (ctx or {}).get("handoff")
    if not handoff:
        return None
    if is_budget_handoff(handoff):
        return handoff  # released by the system when there is budget again, or by the owner
    if at - _parse(handoff["lastActivityAt"]) > timedelta(minutes=timeout_minutes):
        return None
    return handoff


def is_budget_handoff(handoff: Item | None) -> bool:
    """Whether a handoff is the system's, made because the month's model budget is spent."""
    return bool(handoff) and handoff.get("by") == "system" and handoff.get("reason") == BUDGET_REASON


def status_of(ctx: Item | None, at: datetime, timeout_minutes: int) -> str:
    """The conversation's status for the owner: resolved (the session ended), waiting (handed
    off, no person has written since), human (a person has written) or ai."""
    if ctx is None or ctx.get("status") != "active":
        return "resolved"
    handoff = handoff_of(ctx, at, timeout_minutes)
    if handoff is None:
        return "ai"
    return "human" if handoff.get("ownerReplied") else "waiting"
