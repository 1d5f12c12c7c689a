"""Topic keywords and language of a message, for Romanian and English (pure, no I/O)."""

from __future__ import annotations

import re

from agentstream.projections.extraction import extract_name, fold_same_length
from agentstream.projections.vocabulary import STOP_EN, STOP_RO, STOP_WORDS, fold_text

_APOSTROPHE = re.compile(r"['’`´]")
_WORD = re.compile(r"[a-z]+")
_ADDRESSES = re.compile(r"(?<!\S)[^\s@]*@\S+|(?:https?://|www\.)\S+", re.IGNORECASE)
_RO_MARKS = re.compile(r"[ăâîșşțţ]", re.IGNORECASE)
MIN_LENGTH = 3

# Forms of the same subject, counted as one topic ("programați-mă" is about a "programare").
CANONICAL = {w: "programare" for w in "programa programam programati programeaza programez programezi programeze "
             "programat programata".split()} | {
             w: "rezervare" for w in "rezerv rezerva rezervam rezervati rezervat rezervata".split()} | {
             "book": "booking", "booked": "booking", "reserve": "reservation", "reserved": "reservation"}
# Romanian words that decide the language (English words that look alike are left out).
RO_WORDS = (STOP_RO - STOP_EN) | frozenset("""programare programari programa inchideti inchidem
deschis deschisi deschideti deschidem maine pret preturi costa lei loc locuri liber libera
vineri sambata duminica luni marti miercuri joi saptamana""".split())
EN_WORDS = STOP_EN - STOP_RO


def words(text: str) -> list[str]:
    """The folded words of a text, apostrophes removed ("don't" → "dont"), digits dropped."""
    return _WORD.findall(_APOSTROPHE.sub("", fold_text(text)))


def topic_words(text: str) -> list[str]:
    """The words of a text that are topics, in order: folded, canonical, at least 3 letters, no
    stop words, no e-mail or web addresses, not the customer's name ("mă numesc Ana")."""
    text = _ADDRESSES.sub(" ", text)
    name = extract_name(*fold_same_length(text))
    named = set(words(name)) if name else set()
    found = (CANONICAL.get(w, w) for w in words(text))
    return [w for w in found if len(w) >= MIN_LENGTH and w not in STOP_WORDS and w not in named]


def extract_topics(text: str, limit: int = 5) -> list[str]:
    """The first `limit` distinct topic words, in order of first appearance."""
    topics: list[str] = []
    for word in topic_words(text):
        if len(topics) >= limit:
            break
        if word not in topics:
            topics.append(word)
    return topics


def guess_language(text: str) -> str | None:
    """'ro' or 'en' when the text says so (diacritics or common words), else None."""
    if _RO_MARKS.search(text):
        return "ro"
    found = set(words(text))
    ro, en = len(found & RO_WORDS), len(found & EN_WORDS)
    if ro == en == 0:
        return None
    return "ro" if ro >= en else "en"


def detect_language(text: str, default: str = "en") -> str:
    """'ro' for Romanian (diacritics or Romanian words), 'en' for English, else `default`."""
    return guess_language(text) or default
