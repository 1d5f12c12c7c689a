"""Facts a customer states in one message, Romanian or English (pure, deterministic, no model).

Matching runs on a folded copy of the text (lower case, diacritics removed, same length as the
text), so positions map back to the original for capitalisation and for values shown to people.

Values: single-valued kinds are strings — name "Ana Popescu", phone in E.164 "+40722123456",
email "ana@example.ro", address "Str. Florilor 5, București" or a town "Cluj", language "ro" /
"en" / …; multi-valued kinds are flat maps — order {"ref": "A-5521"}, appointment
{"at": "2026-11-26T10:00:00+02:00" (or a day only, "2026-11-30"), "service": "tuns" | None}.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from agentstream.projections.vocabulary import STOP_WORDS, fold_text
from agentstream.projections.when import MONTHS, PART_TIMES, RELATIVE_DAYS, WEEKDAY_WORDS, resolve

MAX_TEXT = 4000  # characters read from one message (bounded cost)
NAME_WORDS, PLACE_WORDS = 3, 3
ADDRESS_LIMIT, VALUE_LIMIT = 150, 80

NOT_NAMES = STOP_WORDS | frozenset("""
fine good great ok okay well here there looking interested interesting calling writing trying wondering
hoping waiting coming going running sorry afraid glad happy sure not just new back free available busy late
early ready done still also really very too allergic vegan vegetarian pregnant outside downstairs upstairs
nearby home customer client regular member thinking booked able unable sick ill tired hungry curious
confused unsure asking planning travelling traveling visiting staying moving returning first bringing
getting having doing feeling reaching contacting emailing texting messaging english british romanian
american german french italian spanish irish scottish welsh polish hungarian delighted excited
bine rau interesat interesata interesati aici acasa acolo ocupat ocupata liber libera disponibil
disponibila gata sigur sigura multumit multumita nemultumit nemultumita clienta clientul nou noua
programat programata bolnav bolnava curios curioasa convins convinsa obosit obosita singur singura
student studenta roman romanca englez engleza fericit fericita suparat suparata dezamagit dezamagita
alergic alergica insarcinata aproape afara jos sus acord nerabdator incantat incantata bucuros
bucuroasa persoana pe drum intarziere mama tata sotul sotia fiica fiul programare programari rezervare
""".split()) | frozenset(WEEKDAY_WORDS) | frozenset(MONTHS) | frozenset(RELATIVE_DAYS)
NOT_PLACES = STOP_WORDS | frozenset(WEEKDAY_WORDS) | frozenset(MONTHS) | frozenset("""zona apropiere centru
centrul oras orasul bloc casa chirie apartament cartier cartierul area town city flat house apartment suburbs
centre center village sat comuna""".split())
SERVICES = frozenset("""tuns tunsoare tunsori vopsit vopsire vopsea suvite coafat coafura coafare manichiura
pedichiura unghii epilare epilat masaj barbierit barba tratament consultatie consult detartraj albire
extractie plomba haircut trim colour color coloring colouring highlights blowdry blow-dry manicure
pedicure nails waxing massage facial shave beard consultation checkup check-up cleaning whitening""".split())
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "ten": 10, "doi": 2,
           "doua": 2, "trei": 3, "patru": 4, "cinci": 5, "sase": 6, "sapte": 7, "opt": 8, "zece": 10}
LANGUAGES = {"engleza": "en", "englezeste": "en", "english": "en", "romana": "ro", "romaneste": "ro",
             "romanian": "ro", "franceza": "fr", "french": "fr", "germana": "de", "german": "de",
             "maghiara": "hu", "hungarian": "hu", "italiana": "it", "italian": "it", "spaniola": "es",
             "spanish": "es"}
PEOPLE = frozenset("me mine my him her noi el ea fiica fiul sotia sotul mama tata copil copilul copii "
                   "friend wife husband son daughter kid kids child children".split())
NOT_SERVICES = STOP_WORDS | PEOPLE | frozenset(WEEKDAY_WORDS) | frozenset(RELATIVE_DAYS) | frozenset(PART_TIMES) \
    | frozenset(MONTHS) | frozenset("ora ore persoane people next this week saptamana".split())
# Business time zone → (country calling code, digits after the national 0); Romania otherwise.
NATIONAL = {"Europe/London": ("44", 10), "Europe/Chisinau": ("373", 8)}
ROMANIA = ("40", 9)


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of words, longest first."""
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


# Words one of which a message must contain before the (slower) patterns of a fact are tried.
NAME_CUES = frozenset("numesc cheama numele nume name sunt im i this".split())
ADDRESS_CUES = frozenset("adresa address stau locuiesc locuim stam domiciliez sunt suntem live from based".split())
ORDER_CUES = frozenset("comanda comenzii comenzi order booking rezervarea rezervarii reservation referinta reference "
                       "awb factura facturii invoice ticket tichet".split())
CORRECTION_CUES = frozenset("nu fapt defapt actually corect corectul corecta gresit greseala wrong rectific "
                            "rectificare meant voiam vrut typo mistake inselat".split())
FORGET_CUES = frozenset("uitati uita stergeti sterge stergi eliminati elimina scoateti scoate forget delete remove "
                        "erase folositi use using".split())
CANCEL_CUES = frozenset("anulez anulati anuleaza anula anulam anulare anulat cancel canceling cancelling canceled "
                        "cancelled call stergeti delete mai make".split())
RESCHEDULE_CUES = frozenset("mutati muta mutam mut schimbati schimba schimbam schimb reprogramati reprogramez "
                            "reprogramare amanati amana loc change move reschedule instead".split())
BOOKING_CUES = frozenset("masa table loc liber slot slots".split())
BOOKING_PREFIXES = ("program", "rezerv", "book", "appointment", "reserv")
_CUE = re.compile(r"[a-z]+")
_DIGIT = re.compile(r"\d")
_NON_DIGITS = re.compile(r"\D")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_TOKEN = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_GAP = re.compile(r"[ \t]+")
_EMAIL = re.compile(r"(?<![a-z0-9._%+-])[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d(?:[ .\-/()]{0,3}\d){6,14}(?!\w)")
_ORDER = re.compile(
    r"\b(?:comanda|comenzii|comenzi|order|booking|rezervarea|rezervarii|reservation|referinta|reference|awb|"
    r"factura|facturii|invoice|ticket|tichet)"
    r"(?:\s*(?:nr|no|number|numarul|numar|num|ref|reference|referinta|id|code|cod|mea|my|is|e|este|cu)\b\.?)*"
    r"\s*(?:[:#]\s*)?#?([a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?)\b")
_NAME_SAID = re.compile(
    r"\b(?:ma numesc|ma cheama|numele meu (?:e|este)\b|numele (?:e|este)\b|my name is|my name's|name is|"
    r"numele:|nume:|name:)\s*")
_NAME_SOFT = re.compile(r"\b(?:sunt|i'm|i’m|im|i am|this is)\s+")
_ADDRESS = re.compile(
    r"\b(?:adresa (?:mea )?(?:de livrare )?(?:e\b|este\b|:)|adresa:|my (?:home |delivery )?address(?: is|:)|"
    r"address:|i live at|(?:locuiesc|stau|locuim|stam) (?:pe|la adresa)(?= (?:str|strada|bd|bulevardul|calea|"
    r"aleea|soseaua|sos|piata|splaiul|intrarea|nr)\b))\s*")
_ADDRESS_END = re.compile(
    r"[\n!?;]|\.(?=\s|$)|\s+(?:si|iar|dar|and|but|va rog|please|multumesc|thanks|thank you)\b")
ABBREVIATIONS = frozenset("str nr bl sc ap et bd bld sos jud sect st rd ave apt no blvd cal al mun com".split())
_TOWN = re.compile(
    r"\b(?:(?:stau|locuiesc|locuim|stam|domiciliez) (?:in|la)|(?:sunt|suntem) din|(?:i|we) live in|"
    r"(?:i'm|i am|we're|we are) from|based in)\s+")
_LANGUAGE = re.compile(
    rf"\b(?:vorbiti|vorbesti|vorbim|vorbi|speak|talk|write|scrieti|scrie|reply|answer|raspundeti|raspunde|"
    rf"comunicam|prefer|preferam)\s+(?:\w+\s+){{0,3}}?(?:limba\s+)?({_alternation(LANGUAGES)})\b"
    rf"|\bin\s+(?:limba\s+)?({_alternation(LANGUAGES)})\s*(?:,\s*)?(?:va rog|please|pls|daca se poate|if possible)")
_NEGATED = re.compile(r"(?:\bnu|n't|\bnot)\s+(?:\w+\s+)?$")
_CORRECTION = re.compile(
    r"^\W*nu\b|\b(?:de fapt|defapt|actually|corect|corectul|corecta|gresit|greseala|wrong|rectific|rectificare|"
    r"i meant|meant to say|voiam sa (?:zic|spun|scriu)|am vrut sa (?:zic|spun|scriu)|typo|my mistake|"
    r"m-am inselat|am gresit)\b")
_FORGET = re.compile(
    r"(?<!\bam )(?<!\bai )(?<!\bnu )(?<!\bdon't )(?<!\bdont )(?<!\bnot )"
    r"\b(?:uitati|uita|stergeti|sterge|stergi|eliminati|elimina|scoateti|scoate|forget|delete|remove|erase|"
    r"nu mai folositi|don't use|do not use|stop using)\b([^.!?;\n]{0,40})")
_FORGET_EMAIL = re.compile(r"\b(?:adresa (?:mea )?de )?(?:e-?mail|mail)\w*|\bemail address")
_FORGET_KINDS = (("phone", re.compile(r"\b(?:numar|telefon|phone|number|mobil)")),
                 ("address", re.compile(r"\b(?:adres|address)")), ("name", re.compile(r"\b(?:nume|numele|name)\b")))
_APPOINTMENT_WORDS = r"(?:programar\w*|rezervar\w*|appointment\w*|booking\w*|reservation\w*|table|masa)"
_CANCEL = re.compile(
    rf"\b(?:anulez|anulati|anuleaza|anula|anulam|anulare|cancel|cancell?ing|call off|stergeti|delete)\b"
    rf"[^.!?;\n]{{0,30}}\b{_APPOINTMENT_WORDS}\b|\b{_APPOINTMENT_WORDS}\b[^.!?;\n]{{0,20}}\b(?:anulat|cancell?ed)\b"
    rf"|\b(?:nu mai (?:pot veni|vin|ajung)|can't make it|cannot make it|won't make it|can no longer make it)\b")
_RESCHEDULE = re.compile(
    r"\b(?:mutati|muta|mutam|sa mut|mut|schimbati|schimba|schimbam|sa schimb|reprogramati|reprogramez|"
    r"reprogramare|amanati|amana|in loc de|change|move|reschedule|instead)\b")
_BOOKING = re.compile(
    r"\b(?:program(?!ul\b|ului\b|ele\b|e\b)[a-z]+|rezerv[a-z]*|o masa|book(?:ed|ing)?|appointments?|"
    r"reserv(?:e|ation|ations)|table for|a table|aveti loc|aveti ceva liber|free slots?|any slots?)\b")
SERVICE_CUES = frozenset(part for service in SERVICES for part in service.split("-"))
_PARTY = re.compile(
    rf"\b(table|masa)\s+(?:for|pentru|de)\s+(\d{{1,2}}|{_alternation(NUMBERS)})\b"
    rf"|\b(for|pentru)\s+(\d{{1,2}}|{_alternation(NUMBERS)})\s+"
    r"(?:persoane|persoana|pers|oameni|people|persons|guests)\b")
_FOR_NOUN = re.compile(r"\b(?:pentru|for)\s+(?:(?:un|o|a|an)\s+)?([a-z][a-z-]{2,})\b")


@dataclass(frozen=True)
class Extraction:
    """What one message says: facts as (kind, value) and what it asks to change."""

    facts: list[tuple[str, Any]] = field(default_factory=list)
    corrected: bool = False           # "de fapt…", "actually…": stated facts correct earlier ones
    retracted: frozenset[str] = frozenset()  # kinds to forget ("uitați numărul meu")
    cancel: bool = False              # cancels the pending appointments
    reschedule: bool = False          # the new appointment replaces the pending ones


class _FoldTable(dict[int, str]):
    """str.translate's table: each character to one folded character, worked out once."""

    def __missing__(self, code: int) -> str:
        folded = fold_text(chr(code))
        self[code] = value = folded[0] if folded else " "
        return value


_FOLD_TABLE = _FoldTable()


def fold_same_length(text: str) -> tuple[str, str]:
    """(text, folded): NFC text without stray combining marks, and its folded copy of equal length."""
    text = unicodedata.normalize("NFC", text[:MAX_TEXT])
    if text.isascii():
        return text, text.lower()
    if _COMBINING.search(text):
        text = "".join(c for c in text if not unicodedata.combining(c))
    return text, text.translate(_FOLD_TABLE)


def cues(folded: str) -> frozenset[str]:
    """The letter runs of a folded text (for the cheap "could it say this?" checks)."""
    return frozenset(_CUE.findall(folded))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _title(word: str) -> str:
    return word[:1].upper() + word[1:].lower() if word.isupper() or word.islower() else word


def _proper_words(text: str, folded: str, start: int, limit: int, stop: frozenset[str],
                  first_any_case: bool) -> str | None:
    """Capitalised words from `start` (all lower case ones if the first may be and is), up to
    `limit`, separated by spaces only, none a stop word; joined, title-cased."""
    found: list[str] = []
    pos, lower = start, False
    while len(found) < limit:
        m = _TOKEN.match(folded, pos)
        if not m or m.group(0) in stop or len(m.group(0)) < 2:
            break
        upper = text[m.start()].isupper()
        if not (upper or (first_any_case and (not found or lower))):
            break
        if not found:
            lower = not upper
        found.append(_title(text[m.start():m.end()]))
        gap = _GAP.match(folded, m.end())
        if not gap:
            break
        pos = gap.end()
    return " ".join(found)[:VALUE_LIMIT] or None


def extract_name(text: str, folded: str, words: frozenset[str] | None = None) -> str | None:
    """'mă numesc Ana', 'my name is John Smith'; 'sunt Ana' / "I'm John" only when capitalised."""
    if NAME_CUES.isdisjoint(cues(folded) if words is None else words):
        return None
    for m in _NAME_SAID.finditer(folded):
        name = _proper_words(text, folded, m.end(), NAME_WORDS, NOT_NAMES, first_any_case=True)
        if name:
            return name
    for m in _NAME_SOFT.finditer(folded):
        token = _TOKEN.match(folded, m.end())
        if token and token.group(0).endswith("ing"):
            continue
        name = _proper_words(text, folded, m.end(), NAME_WORDS, NOT_NAMES, first_any_case=False)
        if name:
            return name
    return None


def normalise_phone(raw: str, national: tuple[str, int] = ROMANIA) -> str | None:
    """A phone number in E.164 ('+40722123456'), or None if `raw` is not one. National forms
    ('0722 123 456') are read for the business's country (`national`: code, digits after 0)."""
    raw = raw.strip().removeprefix("whatsapp:").replace("(0)", "")
    digits = _NON_DIGITS.sub("", raw)
    code, length = national
    if raw.startswith("+"):
        full = digits
    elif raw.startswith("00"):
        full = digits[2:]
    elif digits.startswith("0") and len(digits) == length + 1 and (code != "40" or digits[1] in "237"):
        full = code + digits[1:]
    elif raw.isdigit() and not raw.startswith("0"):
        full = digits  # a channel's own id: WhatsApp sends "40722123456"
    else:
        return None
    if full.startswith("40") and not (len(full) == 11 and full[2] in "237"):
        return None
    return "+" + full if 8 <= len(full) <= 15 and not full.startswith("0") else None


def extract_phone(folded: str, national: tuple[str, int]) -> str | None:
    for m in _PHONE.finditer(folded):
        raw = m.group(0)
        phone = normalise_phone(raw, national) if not raw.isdigit() or raw.startswith("0") else None
        if phone:
            return phone
    return None


def extract_orders(text: str, folded: str, words: frozenset[str]
                   ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Order or booking references ('comanda nr. 12345', 'order #A-5521') and their spans."""
    orders: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    if ORDER_CUES.isdisjoint(words):
        return orders, spans
    for m in _ORDER.finditer(folded):
        ref = m.group(1)
        if len(ref) >= 3 and any(c.isdigit() for c in ref):
            orders.append({"ref": text[m.start(1):m.end(1)].upper()})
            spans.append(m.span(1))
    return orders, spans


def _address_end(folded: str, start: int) -> int:
    """Where a stated address ends: the sentence's end (not an abbreviation's dot) or 'și …'."""
    for m in _ADDRESS_END.finditer(folded, start):
        before = folded[max(start, m.start() - 8):m.start()].rsplit(None, 1)
        if m.group(0) != "." or not before or before[-1] not in ABBREVIATIONS:
            return m.start()
    return len(folded)


def extract_address(text: str, folded: str, words: frozenset[str]) -> str | None:
    """A stated address ('adresa mea e Str. Florilor 5, București') or town ('stau în Cluj')."""
    if ADDRESS_CUES.isdisjoint(words):
        return None
    m = _ADDRESS.search(folded)
    if m:
        value = text[m.end(): _address_end(folded, m.end())].strip(" ,.:-\t")[:ADDRESS_LIMIT]
        if len(value) >= 3 and any(c.isalpha() for c in value):
            return value
    lower = not any(c.isupper() for c in text)
    for m in _TOWN.finditer(folded):
        town = _proper_words(text, folded, m.end(), PLACE_WORDS, NOT_PLACES, first_any_case=lower)
        if town:
            return town
    return None


def extract_language(folded: str, words: frozenset[str]) -> str | None:
    """'vorbiți engleză?', 'can we speak Romanian', 'prefer română', 'in English please'."""
    if words.isdisjoint(LANGUAGES):
        return None
    for m in _LANGUAGE.finditer(folded):
        if not _NEGATED.search(folded, max(0, m.start() - 20), m.start()):
            return LANGUAGES[m.group(1) or m.group(2)]
    return None


def extract_retracted(folded: str, words: frozenset[str]) -> frozenset[str]:
    """Kinds the customer asks to forget: 'uitați numărul meu', 'delete my email address'."""
    kinds: set[str] = set()
    if FORGET_CUES.isdisjoint(words):
        return frozenset()
    for m in _FORGET.finditer(folded):
        target = m.group(1)
        if _FORGET_EMAIL.search(target):
            kinds.add("email")
            target = _FORGET_EMAIL.sub(" ", target)
        kinds.update(kind for kind, pattern in _FORGET_KINDS if pattern.search(target))
    return frozenset(kinds)


def extract_service(text: str, folded: str, words: frozenset[str]) -> str | None:
    """'tuns', 'manichiură', 'table for 4' / 'masă pentru 4', or the noun after 'pentru' / 'for a'."""
    party = _PARTY.search(folded)
    if party:
        count = party.group(2) or party.group(4)
        number = NUMBERS.get(count, count)
        english = (party.group(1) or party.group(3)) in ("table", "for")
        return f"table for {number}" if english else f"masă pentru {number}"
    found = _TOKEN.finditer(folded) if not SERVICE_CUES.isdisjoint(words) else ()
    services = [text[m.start():m.end()].lower() for m in found if m.group(0) in SERVICES]
    if services:
        return ", ".join(dict.fromkeys(services[:3]))
    for m in _FOR_NOUN.finditer(folded):
        if m.group(1) not in NOT_SERVICES:
            return text[m.start(1):m.end(1)].lower()[:VALUE_LIMIT]
    return None


def asks_booking(folded: str, words: frozenset[str]) -> bool:
    """The message asks for an appointment or a table ('programare', 'book', 'o masă', …)."""
    cued = not BOOKING_CUES.isdisjoint(words) or any(w.startswith(BOOKING_PREFIXES) for w in words)
    return cued and bool(_BOOKING.search(folded))


def extract_appointment(text: str, folded: str, words: frozenset[str], at: datetime, zone: tzinfo
                        ) -> dict[str, Any] | None:
    """A requested appointment, resolved in the business's time zone (see `when`)."""
    if not asks_booking(folded, words):
        return None
    local = at.astimezone(zone)
    when = resolve(folded, local.replace(tzinfo=None))
    if when is None:
        return None
    if isinstance(when, datetime):
        stamp = when.replace(tzinfo=zone).isoformat(timespec="seconds")
    else:
        stamp = when.isoformat()
    return {"at": stamp, "service": extract_service(text, folded, words)}


def _flag(pattern: re.Pattern[str], folded: str, words: frozenset[str], cue: frozenset[str]) -> bool:
    return not cue.isdisjoint(words) and bool(pattern.search(folded))


def extract(text: str, at: datetime, zone: tzinfo, national: tuple[str, int] = ROMANIA) -> Extraction:
    """Everything one message states, with the event's time `at` and the business's zone."""
    text, folded = fold_same_length(text)
    words = cues(folded)
    digits = bool(_DIGIT.search(folded))
    emails = list(_EMAIL.finditer(folded)) if "@" in folded else []
    orders, order_spans = extract_orders(text, folded, words) if digits else ([], [])
    masked = _blank(folded, [m.span() for m in emails])
    plain = _blank(masked, order_spans)
    facts: list[tuple[str, Any]] = [
        ("name", extract_name(text, masked, words)),
        ("phone", extract_phone(plain, national) if digits else None),
        ("email", emails[0].group(0)[:254] if emails else None),
        ("address", extract_address(text, masked, words)),
        ("language", extract_language(masked, words)),
        ("appointment", extract_appointment(text, plain, words, at, zone)),
        *(("order", order) for order in orders[:3]),
    ]
    return Extraction(
        facts=[(kind, value) for kind, value in facts if value is not None],
        corrected=_flag(_CORRECTION, folded, words, CORRECTION_CUES),
        retracted=extract_retracted(folded, words),
        cancel=_flag(_CANCEL, folded, words, CANCEL_CUES),
        reschedule=_flag(_RESCHEDULE, folded, words, RESCHEDULE_CUES),
    )
