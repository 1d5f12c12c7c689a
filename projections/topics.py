"""Topic keywords and language of a message, for Romanian and English (pure, no I/O)."""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans({"ă": "a", "â": "a", "î": "i", "ș": "s", "ş": "s", "ț": "t", "ţ": "t"})
_WORD = re.compile(r"[a-z]+")
_RO_MARKS = re.compile(r"[ăâîșşțţ]", re.IGNORECASE)

STOP_RO = frozenset("""
a ai al ale alt alta alte altele am ar are as asa asta aceasta acest acesta acestea acestei
acestui acel acela acele acolo acum adica aici atat atata atunci au avea aveti avem azi
buna bun bune ca cat cate cand ce cea cei cel cele celor ceva chiar cine cineva cu cum da
daca dar de deci deja desi din dintre doar dupa e ea ei el ele era este eu fara fi fie fost
foarte iar ii il imi in inca insa intre isi la le li lor lui m ma mai mea mei meu mi mie
mine mult multa multe multi multumesc multumim ne nici noi nostru noastra nu o ori pe pentru
pana poate pot prea prin sa sau se si sunt suntem sa salut seara scuze spre sub ta tale te
ti toata toate tot toti tu un una unde unei unui unul va vom voi vreau vrea vreo ziua zi
dumneavoastra dvs va rog ma multumesc sal hei alo ok bine te rog imi puteti puteti spune ora ore
""".split())

STOP_EN = frozenset("""
a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its just me more most my
no nor not now of off on once only or other our out over own please same she should so some
such than thank thanks that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would
you your yours hello hi hey good morning evening afternoon okay ok yes yeah want like
tell know get got can could may might must shall today tomorrow
""".split())

STOP_WORDS = STOP_RO | STOP_EN
RO_HINTS = frozenset("""si sau este sunt buna ziua va rog multumesc pentru unde cand cat cate
programare programari inchideti deschis deschideti azi maine vreau doresc aveti puteti pret
preturi salut seara dumneavoastra""".split())


def fold_text(text: str) -> str:
    """Lower case with Romanian diacritics (and other accents) folded to ASCII."""
    lowered = text.lower().translate(_FOLD)
    return "".join(c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c))


def extract_topics(text: str, limit: int = 5) -> list[str]:
    """Keywords in order of first appearance: folded, no stop words, at least 3 letters."""
    topics: list[str] = []
    for word in _WORD.findall(fold_text(text)):
        if len(word) >= 3 and word not in STOP_WORDS and word not in topics:
            topics.append(word)
            if len(topics) == limit:
                break
    return topics


def detect_language(text: str) -> str:
    """'ro' for Romanian (diacritics or common Romanian words), otherwise 'en'."""
    if _RO_MARKS.search(text):
        return "ro"
    words = set(_WORD.findall(fold_text(text)))
    ro, en = len(words & RO_HINTS), len(words & STOP_EN)
    return "ro" if ro > 0 and ro >= en else "en"
