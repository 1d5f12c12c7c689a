"""A customer's short answer about their appointment (pure): "da" / "yes" / "ok" accepts the time
proposed to them; "anulez" / "cancel" cancels their appointment, and so does "nu mai pot" /
"can't make it" (the answer to a reminder). Which appointment: the
proposal waiting for them (the latest), or for a cancellation the soonest one still to come."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentstream.projections.appointments import HOLDING, OPEN, customer_appointments
from agentstream.projections.topics import words

YES = frozenset({"da", "yes", "ok", "okay", "confirm", "confirmam", "confirm", "sigur", "sure", "perfect", "bine"})
CANCEL_PREFIXES = ("anul", "cancel")
CANT_COME = ("nu mai pot", "nu pot veni", "nu pot ajunge", "nu mai ajung", "cant make it", "cannot make it", "cant come",
             "cannot come")
MAX_WORDS = 8  # a longer message is a conversation, not an answer
FILLER = frozenset({"multumesc", "mersi", "thanks", "thank", "you", "va", "rog", "please", "pe", "atunci", "e", "este",
                    "it", "is", "that", "la", "ne", "vedem", "see"})


def answer_of(text: str) -> str | None:
    """"yes", "cancel" or None for a message that is neither answer."""
    said = [w for w in words(text) if w]
    if not said or len(said) > MAX_WORDS:
        return None
    joined = f" {' '.join(said)} "
    if any(f" {phrase} " in joined for phrase in CANT_COME):  # an answer to a reminder: as a cancellation
        return "cancel"
    if any(w.startswith(CANCEL_PREFIXES) for w in said) and "nu" not in said and "not" not in said and "dont" not in said:
        return "cancel"
    if any(w in YES for w in said) and all(w in YES or w in FILLER for w in said):
        return "yes"
    return None


def answered(state: dict[str, Any] | None, text: str, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """(action, appointment) the customer's message `text` takes, None if it takes none."""
    answer = answer_of(text)
    if answer is None:
        return None
    rows = customer_appointments(state, now)
    if answer == "yes":
        proposed = [a for a in rows if a["status"] == "proposed"]
        return ("confirm", max(proposed, key=lambda a: a["lastSeq"])) if proposed else None
    coming = [a for a in rows if a["status"] in OPEN + HOLDING]
    return ("cancel", coming[0]) if coming else None
