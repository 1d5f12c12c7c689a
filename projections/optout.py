"""A customer who says stop: the words that opt out of (and back into) business-started
messages, and the vendors' opt-out signals (pure).

A message that is only one of these words (any case, punctuation around it ignored) sets off a
`CustomerOptedOut` or `CustomerOptedIn`; so does a vendor's own signal recorded with the message
(Twilio's `OptOutType`, kept as `replyTo.optOutType`). From an opt-out on, the customer gets no
nudge and no reminder; answers to their own messages and confirmations of their own requests
still go out.
"""

from __future__ import annotations

import re
from typing import Any, Literal

OUT_WORDS = frozenset({"stop", "dezabonare", "dezabonez", "unsubscribe", "stopall", "optout", "opt-out"})
IN_WORDS = frozenset({"start", "unstop", "reabonare"})
VENDOR_SIGNALS = {"STOP": "out", "START": "in"}  # Twilio's OptOutType (HELP is not a change)
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
CONFIRMATIONS = {
    "out": {"ro": "Am înțeles: nu vă mai trimitem mementouri sau alte mesaje. Scrieți START dacă vă răzgândiți.",
            "en": "Understood: we will not send you reminders or other messages. Write START if you change your mind."},
    "in": {"ro": "Bine ați revenit: veți primi din nou mementouri.",
           "en": "Welcome back: you will get reminders again."},
}

Change = Literal["out", "in"]


def change(content: str, reply_to: dict[str, Any] | None = None) -> tuple[Change, str] | None:
    """("out" | "in", what said it: the word or the vendor's signal) for an inbound message, or None."""
    signal = str((reply_to or {}).get("optOutType", "")).upper()
    if signal in VENDOR_SIGNALS:
        return VENDOR_SIGNALS[signal], f"vendor:{signal}"  # type: ignore[return-value]
    word = _EDGES.sub("", content.strip()).lower()
    if word in OUT_WORDS:
        return "out", word
    if word in IN_WORDS:
        return "in", word
    return None


def confirmation(which: Change, language: str) -> str:
    texts = CONFIRMATIONS[which]
    return texts.get(language) or texts["en"]


def opted_out(memory: dict[str, Any] | None) -> bool:
    """Whether the customer (their conversation memory) has opted out and not back in."""
    return bool(((memory or {}).get("optOut") or {}).get("out"))
