"""The model extraction's prompt and the checking of its answer (pure; streams/fact_extraction.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from agentstream.events import FactsExtractedPayload, derive_id
from agentstream.streams.fact_extraction import MAX_FACTS, extraction_prompt, facts_event_id, facts_key, parse_facts

TZ = "Europe/Bucharest"


def test_the_prompt_gives_the_message_its_local_time_and_the_business_zone() -> None:
    system, user = extraction_prompt("Vin mâine la 10", datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), TZ)
    assert system["role"] == "system" and "JSON" in system["content"]
    assert user["content"] == "Message sent at 2026-11-24T10:00+02:00 (Tuesday), business time zone Europe/Bucharest:\nVin mâine la 10"


def test_answers_are_cleaned_as_the_fold_would_hold_them() -> None:
    answer = {"facts": [
        {"kind": "phone", "value": "0722 123 456"},
        {"kind": "email", "value": "Ana@Example.RO"},
        {"kind": "order", "value": {"ref": "a-12"}},
        {"kind": "appointment", "value": {"at": "2026-11-25T10:00", "service": "tuns"}},
        {"kind": "appointment", "value": {"at": "2026-11-30"}},
        {"kind": "language", "value": "RO"},
    ]}
    assert parse_facts(orjson.dumps(answer).decode(), TZ) == [
        {"kind": "phone", "value": "+40722123456"},
        {"kind": "email", "value": "ana@example.ro"},
        {"kind": "order", "value": {"ref": "A-12"}},
        {"kind": "appointment", "value": {"at": "2026-11-25T10:00:00+02:00", "service": "tuns"}},
        {"kind": "appointment", "value": {"at": "2026-11-30", "service": None}},
        {"kind": "language", "value": "ro"},
    ]


@pytest.mark.parametrize("content", ["", "not json", "null", "42", '"facts"', '{"facts": null}', '{"facts": {"kind": "name"}}',
                                     '{"facts": [null, 1, "name", {"kind": "name"}, {"kind": "name", "value": 5},'
                                     ' {"kind": "appointment", "value": {"at": "tomorrow"}}, {"kind": "age", "value": "30"}]}'])
def test_anything_else_is_nothing(content: str) -> None:
    assert parse_facts(content, TZ) == []


def test_a_bare_list_is_read_repeats_go_and_the_event_takes_at_most_its_bound() -> None:
    many = [{"kind": "order", "value": f"A-{i}"} for i in range(MAX_FACTS + 5)]
    found = parse_facts(orjson.dumps([many[0], *many]).decode(), TZ)
    assert len(found) == MAX_FACTS and found[0] == {"kind": "order", "value": {"ref": "A-0"}}
    FactsExtractedPayload(facts=found, model="m", sourceEventId="e")  # the event takes them


def test_ids_are_derived_from_the_inbound() -> None:
    assert facts_event_id("e1") == derive_id("facts", "e1") == facts_event_id("e1") != facts_event_id("e2")
    assert facts_key("e1") == "facts:e1"
