"""The JSON that goes onto Kafka: compact UTF-8, DynamoDB's 38-digit numbers, clear parse errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from agentstream.adapters.kafka.client import dumps, loads

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**38), max_value=10**38) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_round_trip_equals_the_standard_library(value: dict) -> None:
    raw = dumps(value)
    assert loads(raw) == value == json.loads(raw)


def test_compact_and_not_escaped() -> None:
    assert dumps({"content": "Bună ziua, mâine? مرحبا", "n": 1}) == '{"content":"Bună ziua, mâine? مرحبا","n":1}'.encode()


def test_numbers_beyond_64_bits_survive() -> None:
    big = 12345678901234567890123456789012345678
    assert loads(dumps({"n": big})) == {"n": big}


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe"])
def test_bad_documents_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)
