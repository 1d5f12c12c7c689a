"""The customer's facts (`ai-agent-customer-facts`): a pure fold of one conversation's events.

State: `{"businessId", "userId", "lastSeq", "version", "facts": {kind: {"current": [fact…],
"superseded": [fact…]}}}`, every value DynamoDB-safe (str, int, bool, None, lists, maps). A fact
is `{"kind", "value", "validFrom", "validTo", "sourceEventId", "source"}`; times are the events'
(`iso`), never the wall clock; source is stated | channel | corrected | owner | model. Values
are described in `extraction` (strings for single-valued kinds, maps for appointment and order).

Rules: a new value of a single-valued kind (name, phone, email, address, language) closes the
current one at the new event's time (the same value changes nothing); orders and appointments
accumulate (at most MAX_CURRENT current); a requested appointment lapses at its own time and
replaces the pending ones only when the customer says so (or corrects it); a cancellation or a
retraction closes facts with no successor. Closed facts are kept, the last MAX_SUPERSEDED per
kind, so the state stays small whatever the history. `version` is the extractor's version the
state was built with: a state of another version is rebuilt by replay, not mixed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone as dt_timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentstream import channel_specs
from agentstream.events import Event, FactCorrected, FactRetracted, FactsExtracted, MediaTranscribed, MessageReceived
from agentstream.events import iso as _iso_uncached
from agentstream.projections.base import FoldConfig, Put
from agentstream.projections.extraction import NATIONAL, ROMANIA, VALUE_LIMIT, extract, normalise_phone

EXTRACTOR_VERSION = 1
SINGLE_KINDS = ("name", "phone", "email", "address", "language")
MULTI_KINDS = ("appointment", "order")
MAX_CURRENT = 10
MAX_SUPERSEDED = 5
LIMITS = {"address": 150, "email": 254, "language": 10}
SENDER_VERIFIED = "senderVerified"  # in a message's replyTo: "false" when the channel could not authenticate the sender

Fact = dict[str, Any]
State = dict[str, Any]
iso = lru_cache(maxsize=256)(_iso_uncached)  # an event's time is formatted several times


def empty_facts(business_id: str, user_id: str) -> State:
    """The facts of a customer before any event."""
    return {"businessId": business_id, "userId": user_id, "lastSeq": 0, "version": EXTRACTOR_VERSION, "facts": {}}


def current_facts(state: State, at: datetime | None = None) -> list[Fact]:
    """The facts current at `at` (validTo None or later), by kind then validFrom; without `at`,
    those current as of the last event that changed facts (pass `at` to see lapsed appointments go)."""
    cutoff = iso(at) if at is not None else None
    found = [f for entry in state["facts"].values() for f in entry["current"]
             if cutoff is None or f["validTo"] is None or f["validTo"] > cutoff]
    return sorted(found, key=lambda f: (f["kind"], f["validFrom"]))


def apply_facts(state: State, event: Event, timezone: str) -> State:
    """Apply one event of this conversation (a new state; the input is never changed);
    `seq <= lastSeq` is a duplicate and returns `state` itself. `timezone` is the business's."""
    if (event.businessId, event.userId) != (state["businessId"], state["userId"]):
        raise ValueError(f"event {event.eventId} is not of {state['businessId']}#{state['userId']}")
    if event.seq <= int(state["lastSeq"]):
        return state
    facts = dict(state["facts"])
    if isinstance(event, MessageReceived):
        _on_message(facts, event, timezone)
    elif isinstance(event, FactCorrected):
        _on_corrected(facts, event, timezone)
    elif isinstance(event, FactRetracted):
        _on_retracted(facts, event, timezone)
    elif isinstance(event, FactsExtracted):
        _on_extracted(facts, event, timezone)
    elif isinstance(event, MediaTranscribed):  # what a voice note says is said
        _on_message(facts, event, timezone)
    return {**state, "lastSeq": event.seq, "facts": facts}


# ---- one kind's facts (never mutated: each change builds new lists) ------------------------


@lru_cache(maxsize=64)
def business_zone(name: str) -> tzinfo:
    """The business's time zone; UTC for an empty or unknown name (a typo must not stop a fold)."""
    try:
        return ZoneInfo(name) if name else dt_timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return dt_timezone.utc


def _identity(kind: str, value: Any) -> Any:
    """What makes two values the same fact: an appointment's time, an order's reference."""
    if kind == "appointment":
        return value.get("at")
    if kind == "order":
        return value.get("ref")
    return value


def _set(facts: dict[str, Any], kind: str, current: list[Fact], closed: list[Fact], at: str) -> None:
    """Store a kind's facts, bounded: overflowing current facts are closed too."""
    overflow = [_closed(f, at) for f in current[:-MAX_CURRENT]]
    superseded = [*(facts.get(kind) or {}).get("superseded", []), *closed, *overflow][-MAX_SUPERSEDED:]
    facts[kind] = {"current": current[-MAX_CURRENT:], "superseded": superseded}


def _closed(fact: Fact, at: str) -> Fact:
    """The fact ended at `at` (or earlier, when it had already lapsed)."""
    return fact if fact["validTo"] is not None and fact["validTo"] <= at else {**fact, "validTo": at}


def _current(facts: dict[str, Any], kind: str) -> list[Fact]:
    return list((facts.get(kind) or {}).get("current", []))


def _sweep(facts: dict[str, Any], kind: str, at: str) -> None:
    """Move facts that lapsed by `at` (past appointments) from current to superseded."""
    current = _current(facts, kind)
    lapsed = [f for f in current if f["validTo"] is not None and f["validTo"] <= at]
    if lapsed:
        _set(facts, kind, [f for f in current if f not in lapsed], lapsed, at)


def _close(facts: dict[str, Any], kind: str, at: str, value: Any = None) -> list[Fact]:
    """Close the kind's current facts (only those with `value`'s identity, if given); the closed.
    The kind is recorded even with nothing to close, so the channel never fills it in again."""
    facts.setdefault(kind, {"current": [], "superseded": []})
    current = _current(facts, kind)
    key = None if value is None else _identity(kind, value)
    closing = [f for f in current if key is None or _identity(kind, f["value"]) == key]
    if closing:
        _set(facts, kind, [f for f in current if f not in closing], [_closed(f, at) for f in closing], at)
    return closing


def _assert(facts: dict[str, Any], fact: Fact, replace: bool) -> None:
    """Add a fact: the same value changes nothing; a value of the same identity, or any current
    value when `replace` (single-valued kinds, corrections), is closed at the fact's time. A fact
    that is over before it starts (an appointment in the past) is ignored."""
    kind, at = fact["kind"], fact["validFrom"]
    current = _current(facts, kind)
    if any(f["value"] == fact["value"] for f in current) or (fact["validTo"] or "~") <= at:
        return  # known already, or an appointment already past
    key = _identity(kind, fact["value"])
    ending = [f for f in current if replace or _identity(kind, f["value"]) == key]
    kept = [f for f in current if f not in ending]
    _set(facts, kind, [*kept, fact], [_closed(f, at) for f in ending], at)


def _fact(kind: str, value: Any, source: str, event: Event, zone: tzinfo, source_event: str | None = None) -> Fact:
    valid_to = _appointment_end(value, zone) if kind == "appointment" else None
    return {"kind": kind, "value": value, "validFrom": iso(event.occurredAt), "validTo": valid_to,
            "sourceEventId": source_event or event.eventId, "source": source}


def _appointment_end(value: dict[str, Any], zone: tzinfo) -> str:
    """An appointment lapses at its time; a day-only request at the end of that day."""
    at = str(value["at"])
    if len(at) == 10:
        day = date.fromisoformat(at) + timedelta(days=1)
        return iso(datetime.combine(day, time(0), zone))
    moment = datetime.fromisoformat(at)
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=zone))


# ---- events ---------------------------------------------------------------------------------


def _channel_fact(event: MessageReceived) -> tuple[str, str] | None:
    """The sender's phone (SMS, WhatsApp) or address (Gmail), from the channel itself; not an
    address the channel found unauthenticated (an e-mail failing DMARC)."""
    if event.payload.replyTo.get(SENDER_VERIFIED) == "false":
        return None
    kind = channel_specs.identity(event.channel)
    sender = event.payload.replyTo.get("to") or event.userId
    if kind == "phone":
        phone = normalise_phone(sender)
        return (kind, phone) if phone else None
    if kind == "email" and "@" in sender:
        return kind, sender.strip().lower()[:LIMITS["email"]]
    return None


def _on_message(facts: dict[str, Any], event: MessageReceived | MediaTranscribed, timezone: str) -> None:
    zone, at = business_zone(timezone), iso(event.occurredAt)
    text = event.payload.text if isinstance(event, MediaTranscribed) else event.payload.content
    said = extract(text, event.occurredAt, zone, NATIONAL.get(timezone, ROMANIA))
    _sweep(facts, "appointment", at)
    if said.cancel:
        _close(facts, "appointment", at)
    forgotten = {kind: [f["value"] for f in _close(facts, kind, at)] for kind in said.retracted}
    stated = {kind for kind, _ in said.facts}
    channel = _channel_fact(event) if isinstance(event, MessageReceived) else None
    if channel and channel[0] not in stated | set(forgotten) and channel[0] not in facts:
        _assert(facts, _fact(*channel, "channel", event, zone), replace=True)
    source = "corrected" if said.corrected else "stated"
    for kind, value in said.facts:
        if kind in forgotten and (not forgotten[kind] or value in forgotten[kind]):
            continue  # "uitați numărul meu 0722…": forgetting is not restating
        replace = kind in SINGLE_KINDS or (kind == "appointment" and (said.reschedule or said.corrected))
        if kind == "appointment" and replace:
            value = _keep_service(value, _current(facts, kind))
        _assert(facts, _fact(kind, value, source, event, zone), replace)


def _keep_service(value: dict[str, Any], pending: list[Fact]) -> dict[str, Any]:
    """A moved appointment keeps the service of the one it replaces ("mutați programarea pe vineri")."""
    if value["service"] is None and pending:
        return {**value, "service": pending[-1]["value"].get("service")}
    return value


def _on_corrected(facts: dict[str, Any], event: FactCorrected, timezone: str) -> None:
    zone = business_zone(timezone)
    value = clean_value(event.payload.kind, event.payload.value, timezone, keep_unparsed=True)
    if value is not None:
        _sweep(facts, event.payload.kind, iso(event.occurredAt))
        _assert(facts, _fact(event.payload.kind, value, event.payload.source, event, zone), replace=True)


def _on_retracted(facts: dict[str, Any], event: FactRetracted, timezone: str) -> None:
    kind, value = event.payload.kind, event.payload.value
    cleaned = None if value is None else clean_value(kind, value, timezone, keep_unparsed=True)
    if value is None or cleaned is not None:
        _close(facts, kind, iso(event.occurredAt), cleaned)


def _on_extracted(facts: dict[str, Any], event: FactsExtracted, timezone: str) -> None:
    zone = business_zone(timezone)
    _sweep(facts, "appointment", iso(event.occurredAt))
    for item in event.payload.facts:
        value = clean_value(item.kind, item.value, timezone)
        if value is not None:
            fact = _fact(item.kind, value, "model", event, zone, event.payload.sourceEventId)
            _assert(facts, fact, replace=item.kind in SINGLE_KINDS)


def clean_value(kind: str, value: Any, timezone: str, keep_unparsed: bool = False) -> Any:
    """A value from outside the extractor (a model, the owner, the API) in the extractor's form,
    bounded; None if it cannot be one. `keep_unparsed` keeps a phone that is not E.164."""
    if kind in MULTI_KINDS:
        return _clean_map(kind, value, timezone)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()[: LIMITS.get(kind, VALUE_LIMIT)]
    if kind == "phone":
        return normalise_phone(text, NATIONAL.get(timezone, ROMANIA)) or (text if keep_unparsed else None)
    return text.lower() if kind in ("email", "language") else text


def _clean_map(kind: str, value: Any, timezone: str) -> dict[str, Any] | None:
    if kind == "order":
        ref = value.get("ref") if isinstance(value, dict) else value
        return {"ref": ref.strip().upper()[:VALUE_LIMIT]} if isinstance(ref, str) and ref.strip() else None
    if not isinstance(value, dict) or not isinstance(value.get("at"), str):
        return None
    try:
        at = _clean_time(value["at"].strip(), business_zone(timezone))
    except ValueError:
        return None
    service = value.get("service")
    service = service.strip()[:VALUE_LIMIT] if isinstance(service, str) else ""
    return {"at": at, "service": service or None}


def _clean_time(text: str, zone: tzinfo) -> str:
    """An ISO date, or an ISO local time with its offset (a time without one is the business's)."""
    if len(text) == 10:
        return date.fromisoformat(text).isoformat()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    return moment.isoformat(timespec="seconds")


class FactsProjection:
    """The customer's facts, one item per customer in `ai-agent-customer-facts` (the state item)."""

    name = "facts"
    table = "facts"
    owns = {"facts": ("businessId", "userId")}
    version = EXTRACTOR_VERSION

    def empty(self, business_id: str, user_id: str) -> State:
        return empty_facts(business_id, user_id)

    def apply(self, state: State, event: Event, config: FoldConfig) -> tuple[State, list[Put]]:
        return apply_facts(state, event, config.timezone), []


FACTS = FactsProjection()
