"""The customer's facts: extraction from real-looking messages (facts_cases), the fold's rules
(supersede, correct, retract, lapse, cancel, reschedule), duplicates, purity and bounded size."""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agentstream.events import Event, MessageReceivedPayload, iso, new_event
from agentstream.projections.extraction import extract
from agentstream.projections.facts import (
    EXTRACTOR_VERSION, MAX_CURRENT, MAX_SUPERSEDED, SINGLE_KINDS, apply_facts, business_zone, current_facts, empty_facts,
)
from tests.sizes import size
from tests.unit.facts_cases import BUCHAREST, CASES, TUESDAY, Case

TZ = BUCHAREST


def event(seq: int, text: str = "", minutes: float = 0, *, kind: str = "MessageReceived", channel: str = "websocket",
          payload: dict[str, Any] | None = None, start: datetime = TUESDAY) -> Event:
    body = payload if payload is not None else {"content": text}
    return new_event(kind, business_id="b", user_id="u", channel=channel, payload=body,
                     occurred_at=start + timedelta(minutes=minutes), event_id=f"e{seq}").with_seq(seq)


def fold(events: list[Event], tz: str = TZ) -> dict[str, Any]:
    state = empty_facts("b", "u")
    for e in events:
        state = apply_facts(state, e, tz)
    return state


def messages(*texts: str, every: float = 1) -> dict[str, Any]:
    """The state after these messages, one a minute from Tuesday 10:00 in Bucharest."""
    return fold([event(i + 1, t, i * every) for i, t in enumerate(texts)])


def values(state: dict[str, Any], kind: str, at: datetime | None = None) -> list[Any]:
    return [f["value"] for f in current_facts(state, at) if f["kind"] == kind]


def superseded(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return state["facts"].get(kind, {}).get("superseded", [])


# ---- the table --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.text[:48] for c in CASES])
def test_one_message_states_exactly_these_facts(case: Case) -> None:
    state = fold([event(1, case.text, start=case.at)], case.tz)
    found: dict[str, list[Any]] = {}
    for fact in current_facts(state):
        found.setdefault(fact["kind"], []).append(fact["value"])
        assert fact["source"] == case.source and fact["sourceEventId"] == "e1"
        assert fact["validFrom"] == iso(case.at)
    assert found == {k: v if isinstance(v, list) else [v] for k, v in case.facts.items()}


def test_the_table_is_big_and_has_negatives() -> None:
    assert len(CASES) >= 60
    assert sum(1 for c in CASES if not c.facts) >= 15
    assert {k for c in CASES for k in c.facts} == {"name", "phone", "email", "address", "language", "appointment", "order"}


# ---- the fold's rules -------------------------------------------------------------------------


def test_empty_state_shape() -> None:
    assert empty_facts("b", "u") == {"businessId": "b", "userId": "u", "lastSeq": 0, "version": EXTRACTOR_VERSION, "facts": {}}


def test_a_new_phone_supersedes_the_old_one_and_the_same_phone_changes_nothing() -> None:
    state = messages("Telefonul meu e 0722 123 456", "Mersi", "Numărul meu e 0722-123-456")
    (fact,) = current_facts(state)
    assert fact["value"] == "+40722123456" and fact["sourceEventId"] == "e1", "the same value: no churn"
    state = apply_facts(state, event(4, "Am schimbat numărul: 0733 000 111", 10), TZ)
    assert values(state, "phone") == ["+40733000111"]
    (old,) = superseded(state, "phone")
    assert old["value"] == "+40722123456" and old["validTo"] == iso(TUESDAY + timedelta(minutes=10))


def test_a_correction_is_marked_and_supersedes_at_once() -> None:
    state = messages("Numărul meu e 0722 123 456", "Nu, numărul corect e 0744 222 333")
    (fact,) = current_facts(state)
    assert (fact["value"], fact["source"]) == ("+40744222333", "corrected")
    assert superseded(state, "phone")[0]["validTo"] == fact["validFrom"]


def test_forgetting_closes_with_no_successor() -> None:
    state = messages("Mă numesc Ana, telefon 0722 123 456, email ana@example.ro, stau în Cluj",
                     "Vă rog uitați numărul meu", "ștergeți adresa mea de email")
    assert [f["kind"] for f in current_facts(state)] == ["address", "name"]
    assert superseded(state, "phone")[0]["validTo"] == iso(TUESDAY + timedelta(minutes=1))
    assert superseded(state, "email")[0]["validTo"] == iso(TUESDAY + timedelta(minutes=2))
    again = messages("Telefon 0722 123 456", "forget my phone number 0722 123 456")
    assert values(again, "phone") == [], "naming the number to forget does not restate it"


def test_channel_identity_once_and_never_back_over_a_stated_or_forgotten_value() -> None:
    sms = {"content": "Bună", "replyTo": {"via": "twilio", "from": "+40264000111", "to": "+40722000111"}}
    state = fold([event(1, kind="MessageReceived", channel="sms", payload=sms)])
    (fact,) = current_facts(state)
    assert (fact["kind"], fact["value"], fact["source"]) == ("phone", "+40722000111", "channel")
    state = apply_facts(state, event(2, "Numărul meu e 0733 111 222", 1), TZ)
    state = apply_facts(state, event(3, kind="MessageReceived", channel="sms", payload=sms, minutes=2), TZ)
    assert values(state, "phone") == ["+40733111222"], "a later SMS does not bring the channel's number back"
    meta = {"content": "Salut", "replyTo": {"phone_number_id": "123", "to": "40722000999"}}
    assert values(fold([event(1, channel="whatsapp", payload=meta)]), "phone") == ["+40722000999"]
    gmail = {"content": "Hello", "replyTo": {"threadId": "t", "to": "Ana@Example.ro"}}
    assert values(fold([event(1, channel="gmail", payload=gmail)]), "email") == ["ana@example.ro"]
    stated = {**sms, "content": "Sunați-mă la 0744 000 000"}
    assert values(fold([event(1, channel="sms", payload=stated)]), "phone") == ["+40744000000"]
    forgotten = fold([event(1, "Uitați numărul meu"), event(2, channel="sms", payload=sms, minutes=1)])
    assert values(forgotten, "phone") == [], "the customer asked us to forget it"
    assert current_facts(fold([event(1, channel="messenger", payload={"content": "Hi", "replyTo": {"to": "123"}})])) == []


def test_an_appointment_lapses_at_its_own_time() -> None:
    state = messages("Puteți să mă programați joi la 10 pentru tuns?")
    (fact,) = current_facts(state)
    thursday_ten = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
    assert fact["validTo"] == iso(thursday_ten)
    assert values(state, "appointment", thursday_ten - timedelta(seconds=1)) == [fact["value"]]
    assert values(state, "appointment", thursday_ten) == []
    later = apply_facts(state, event(2, "Mersi", 3 * 24 * 60), TZ)
    assert values(later, "appointment") == [] and superseded(later, "appointment") == [fact]
    day_only = messages("Vreau o programare luni")
    assert current_facts(day_only)[0]["validTo"] == "2026-11-30T22:00:00.000Z", "the end of Monday in Bucharest"


def test_two_requests_are_both_kept_unless_the_customer_moves_or_cancels() -> None:
    both = messages("Vreau o programare joi la 10 pentru tuns", "Și o programare vineri la 12 pentru manichiură")
    assert [v["at"][:10] for v in values(both, "appointment")] == ["2026-11-26", "2026-11-27"]
    moved = apply_facts(both, event(3, "Mutați programarea de vineri pe sâmbătă la 11, vă rog", 2), TZ)
    assert values(moved, "appointment") == [{"at": "2026-11-28T11:00:00+02:00", "service": "manichiură"}]
    assert {f["validTo"] for f in superseded(moved, "appointment")} == {iso(TUESDAY + timedelta(minutes=2))}
    instead = messages("Programare joi la 10", "Aș vrea vineri la 9 în loc de joi, pentru programare")
    assert [v["at"] for v in values(instead, "appointment")] == ["2026-11-27T09:00:00+02:00"]
    cancelled = apply_facts(both, event(3, "Vreau să anulez programarea, nu mai pot", 5), TZ)
    assert values(cancelled, "appointment") == []
    assert all(f["validTo"] == iso(TUESDAY + timedelta(minutes=5)) for f in superseded(cancelled, "appointment"))


def test_owner_corrections_retractions_and_model_extractions() -> None:
    state = messages("Mă numesc Ana", "Numărul meu e 0722 123 456")
    owner = event(3, kind="FactCorrected", channel="system", minutes=5,
                  payload={"kind": "name", "value": "Ana-Maria Pop", "source": "owner"})
    state = apply_facts(state, owner, TZ)
    assert [(f["value"], f["source"]) for f in current_facts(state) if f["kind"] == "name"] == [("Ana-Maria Pop", "owner")]
    retract = event(4, kind="FactRetracted", channel="system", minutes=6, payload={"kind": "phone"})
    state = apply_facts(state, retract, TZ)
    assert values(state, "phone") == []
    model = event(5, kind="FactsExtracted", channel="system", minutes=7, payload={
        "model": "gpt-4o-mini", "sourceEventId": "e2",
        "facts": [{"kind": "appointment", "value": {"at": "2026-11-27T12:00:00", "service": "vopsit"}},
                  {"kind": "appointment", "value": {"at": "not a time"}},
                  {"kind": "phone", "value": "0722 999 888"}, {"kind": "email", "value": "  "}]})
    state = apply_facts(state, model, TZ)
    made = [f for f in current_facts(state) if f["source"] == "model"]
    assert [(f["kind"], f["value"], f["sourceEventId"]) for f in made] == [
        ("appointment", {"at": "2026-11-27T12:00:00+02:00", "service": "vopsit"}, "e2"), ("phone", "+40722999888", "e2")]
    customer = event(6, kind="FactCorrected", channel="rest", minutes=8,
                     payload={"kind": "appointment", "value": {"at": "2026-11-28", "service": None}, "source": "corrected"})
    state = apply_facts(state, customer, TZ)
    assert [(v, f["source"]) for f in current_facts(state) if (v := f["value"]) and f["kind"] == "appointment"] == [
        ({"at": "2026-11-28", "service": None}, "corrected")]


def test_other_events_only_move_last_seq_and_duplicates_change_nothing() -> None:
    state = messages("Mă numesc Ana")
    reply = event(2, kind="ReplyGenerated", channel="websocket", minutes=1,
                  payload={"content": "Telefonul nostru e 0722 123 456", "inReplyTo": "e1", "sessionId": "s", "model": "m"})
    after = apply_facts(state, reply, TZ)
    assert after == {**state, "lastSeq": 2}
    assert apply_facts(after, reply, TZ) is after
    assert apply_facts(after, event(1, "Mă numesc Ion"), TZ) is after


def test_the_input_is_never_changed_and_other_customers_are_refused() -> None:
    state = messages("Mă numesc Ana, telefon 0722 123 456", "Programare joi la 10")
    before = copy.deepcopy(state)
    apply_facts(state, event(3, "Nu, numărul corect e 0733 111 222; uitați adresa; mutați programarea pe vineri la 9", 2), TZ)
    assert state == before
    other = new_event("MessageReceived", business_id="b", user_id="someone-else", channel="sms",
                      payload={"content": "x"}, occurred_at=TUESDAY).with_seq(9)
    with pytest.raises(ValueError):
        apply_facts(state, other, TZ)


def test_the_state_is_a_dynamodb_item() -> None:
    from agentstream.adapters.dynamo.client import from_item, to_item

    state = messages("Bună, sunt Ana Popescu, telefon 0722 123 456, aș vrea o programare joi la 11 pentru tuns",
                     "comanda nr. 12345", "Vorbiți engleză?", "Uitați numărul meu")
    assert from_item(to_item(state)) == state
    assert "float" not in json.dumps(_types(state))


def _types(value: Any) -> Any:
    """The value's shape with its scalar types (and a check that no map key is empty)."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) and k for k in value)
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    assert value is None or isinstance(value, (str, int, bool))
    return type(value).__name__


def test_unknown_time_zone_is_utc_not_an_error() -> None:
    assert business_zone("Mars/Olympus") == timezone.utc
    state = fold([event(1, "Programare mâine la 10")], "Mars/Olympus")
    assert values(state, "appointment") == [{"at": "2026-11-25T10:00:00+00:00", "service": None}]


# ---- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from([BUCHAREST, "Europe/London", "UTC", ""]))
def test_any_text_folds_without_error(text: str, tz: str) -> None:
    state = fold([event(1, text)], tz)
    for fact in current_facts(state):
        assert fact["validTo"] is None or fact["validTo"] > fact["validFrom"]


VOCABULARY = ("salut mersi vopsit culoare păr lung scurt frumos hello great hair colour lovely weather parking menu "
              "vegan burger ramen ce cum unde și and the is very de pe foarte bine super cafea apă water music "
              "jazz terasa terrace câine dog prețul price bun nice minunat wonderful").split()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=30), st.lists(st.sampled_from(" ,.!?"), min_size=30, max_size=30),
       st.booleans())
def test_no_fact_from_unrelated_words(chosen: list[str], marks: list[str], capitalise: bool) -> None:
    text = "".join((w.capitalize() if capitalise else w) + m for w, m in zip(chosen, marks))
    said = extract(text, TUESDAY, business_zone(TZ))
    assert said.facts == [] and not (said.retracted or said.cancel or said.reschedule)


NAMES = ["Ana", "Ion Popescu", "Maria", "John"]
DAYS = ["mâine", "joi", "vineri", "luni", "pe 12 decembrie", "azi"]
TEMPLATES = [
    lambda d: f"Telefonul meu e 07{d(st.sampled_from('2347'))}{d(st.integers(0, 9_999_999)):07d}",
    lambda d: f"Mă numesc {d(st.sampled_from(NAMES))}",
    lambda d: f"Vreau o programare {d(st.sampled_from(DAYS))} la {d(st.integers(8, 19))} pentru tuns",
    lambda d: f"Mutați programarea pe {d(st.sampled_from(DAYS))} la {d(st.integers(8, 19))}",
    lambda d: "Anulez programarea",
    lambda d: "Uitați numărul meu",
    lambda d: f"comanda nr. {d(st.integers(100, 999_999))}",
    lambda d: f"emailul meu e {d(st.sampled_from(NAMES)).split()[0].lower()}@example.ro",
    lambda d: f"Nu, numărul corect e 0744 {d(st.integers(100_000, 999_999))}",
    lambda d: f"De fapt stau în {d(st.sampled_from(['Cluj', 'Iași', 'Leeds']))}",
    lambda d: "Mulțumesc!",
]


@st.composite
def conversations(draw: st.DrawFn) -> list[Event]:
    """A customer's messages (and some other events) over days, in seq order."""
    minutes, found = 0.0, []
    for seq in range(1, draw(st.integers(1, 25)) + 1):
        minutes += draw(st.sampled_from([0.5, 5, 60, 24 * 60]))
        if draw(st.integers(0, 9)) == 0:
            found.append(event(seq, kind="FactRetracted", channel="system", minutes=minutes,
                               payload={"kind": draw(st.sampled_from(SINGLE_KINDS))}))
        else:
            found.append(event(seq, draw(st.sampled_from(TEMPLATES))(draw), minutes))
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.data())
def test_duplicates_anywhere_change_nothing(events: list[Event], data: st.DataObject) -> None:
    once = fold(events)
    assert fold([e for e in events for _ in (0, 1)]) == once, "every event delivered twice"
    noisy = list(events)
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(1, len(noisy)))
        noisy.insert(at, data.draw(st.sampled_from(noisy[:at])))
    assert fold(noisy) == once, "redeliveries of earlier events inserted anywhere"
    assert fold(events) == once, "deterministic"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_the_rules_hold_after_any_conversation(events: list[Event]) -> None:
    state = fold(events)
    assert state["lastSeq"] == events[-1].seq
    for kind, entry in state["facts"].items():
        assert len(entry["current"]) <= (1 if kind in SINGLE_KINDS else MAX_CURRENT)
        assert len(entry["superseded"]) <= MAX_SUPERSEDED
        assert all(f["validTo"] is not None for f in entry["superseded"]), "closed facts say when"
        for fact in entry["current"] + entry["superseded"]:
            assert fact["kind"] == kind and fact["validFrom"] <= (fact["validTo"] or fact["validFrom"])
    current = current_facts(state)
    assert current == sorted(current, key=lambda f: (f["kind"], f["validFrom"]))


HISTORY = size(10_000, 100_000)


def test_bounded_whatever_the_history_length() -> None:
    """10 000 events (100 000 under `make soak`), one in ten a message with a new phone number or a
    new appointment: the item stays a few KB (DynamoDB's limit is 400 KB) and stops growing once
    the bounds are full (a few dozen messages fill them)."""
    delivered = event(1, kind="ReplyDelivered", channel="sms", payload={"replyEventId": "r"})
    message = event(1, "x")
    texts = [f"0722 {i:06d}" if i % 2 else f"programare pe 12.12 la {10 + i % 8}:{i % 60:02d}" for i in range(1000)]
    payloads = [MessageReceivedPayload.model_construct(content=t, externalId=None, contentType="text/plain",
                                                       attachments=[], replyTo={}) for t in texts]
    state, sizes = empty_facts("b", "u"), []
    for seq in range(1, HISTORY + 1):
        if seq % 10:
            state = apply_facts(state, delivered.model_copy(update={"seq": seq}), TZ)
            continue
        update = {"seq": seq, "payload": payloads[seq // 10 % 1000], "occurredAt": TUESDAY + timedelta(seconds=seq)}
        state = apply_facts(state, message.model_copy(update=update), TZ)
        if seq % (HISTORY // 10) == 0:
            sizes.append(len(json.dumps(state)))
    assert state["lastSeq"] == HISTORY
    assert len(state["facts"]["appointment"]["current"]) == MAX_CURRENT
    assert len(state["facts"]["phone"]["superseded"]) == MAX_SUPERSEDED
    assert max(sizes) < 10_000 and max(sizes) - min(sizes) < 200, sizes


ADVERSARIAL = {
    "spaces after an order word": "1 comanda" + " " * 3990 + "!",
    "no domain": "@ " + "a" * 3997 + "@",
    "digits": "0" * 4000,
    "digits and spaces": "1 " * 2000,
    "dots": "1." * 2000,
    "time words": "la " * 1333,
    "booking words": "joi la 10 " + "programare " * 360,
    "a long name": "ma numesc " + "Ana " * 1000,
    "instead": "programare in loc de " * 190 + "joi",
    "forget": "uitati " * 570,
    "abbreviations": "adresa mea e " + "str. " * 800,
    "everything": "Mă numesc Ana, 0722 123 456, programare joi la 10 pentru tuns. " * 70,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_cost_grows_linearly_with_the_text(text: str) -> None:
    """An eight times longer message costs about eight times more, not sixty-four (no regex
    blow-up; each text has its cues at the start, so both lengths take the same paths).

    The cost is this thread's CPU time (best of five), not the wall clock: other processes on a
    busy machine do not count in it. Absolute speed is a bench's business (an extraction bench
    under `agentstream bench` would hold it; there is none yet)."""
    from agentstream.projections.topics import extract_topics

    def cost(sample: str) -> float:
        timings = []
        for _ in range(5):
            started = time.thread_time()
            extract(sample, TUESDAY, business_zone(TZ))
            extract_topics(sample)
            timings.append(time.thread_time() - started)
        return min(timings)

    assert cost(text) < 24 * cost(text[: len(text) // 8]) + 0.003
