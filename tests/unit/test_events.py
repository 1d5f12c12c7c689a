"""The event envelope: validation, versions, deterministic ids, and the generated schemas."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given, strategies as st
from pydantic import ValidationError

import json

import jsonschema

from agentstream.events import (
    CHANNELS, MESSAGE_KINDS, UnknownChannel, UnknownEventType, UnknownSchemaVersion, new_event, parse_event,
    reply_event_id,
)
from agentstream.schemas import render_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]


def raw_message(**overrides: object) -> dict:
    event = new_event("MessageReceived", business_id="b", user_id="u", channel="sms",
                      payload={"content": "Bună ziua! 💇‍♀️ שלום"},
                      occurred_at=datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc))
    return event.with_seq(3).to_json_dict() | overrides


def test_round_trip_keeps_text_and_time() -> None:
    raw = raw_message()
    event = parse_event(raw)
    assert event.payload.content == "Bună ziua! 💇‍♀️ שלום"
    assert raw["occurredAt"] == "2026-03-29T01:30:00.000Z"
    assert event.streamId == "b#u" and event.seq == 3
    assert parse_event(event.to_json_dict()) == event


def test_unknown_schema_version_is_a_clear_error() -> None:
    with pytest.raises(UnknownSchemaVersion, match="schemaVersion 4; this build reads 3: upgrade"):
        parse_event(raw_message(schemaVersion=4))


def test_an_unknown_type_asks_for_an_upgrade_not_a_dlq() -> None:
    with pytest.raises(UnknownEventType, match="type 'AppointmentBooked'.*upgrade"):
        parse_event(raw_message(type="AppointmentBooked"))


def test_a_v1_reply_is_upcast_to_v2_without_a_recorded_prompt() -> None:
    reply = new_event("ReplyGenerated", business_id="b", user_id="u", channel="sms",
                      payload={"content": "Da", "inReplyTo": "e1", "sessionId": "s", "model": "m"})
    v1 = reply.to_json_dict() | {"schemaVersion": 1}
    v1["payload"] = {k: v for k, v in v1["payload"].items() if k not in ("promptHash", "versions")}
    upcast = parse_event(v1)
    assert upcast.schemaVersion == 5 and upcast.payload.promptHash == "" and upcast.payload.versions == {}
    assert upcast.payload.coversUpToSeq == 0 and upcast.payload.covers == []  # v2 -> v3: covers inReplyTo alone
    assert upcast.payload.content == "Da"
    with pytest.raises(UnknownSchemaVersion, match="ReplyGenerated.*schemaVersion 6"):
        parse_event(reply.to_json_dict() | {"schemaVersion": 6})


def test_an_unknown_channel_asks_for_an_upgrade_not_a_dlq() -> None:
    with pytest.raises(UnknownChannel, match="channel 'fax', which this build does not know: upgrade"):
        parse_event(raw_message(channel="fax"))
    assert issubclass(UnknownChannel, UnknownSchemaVersion)  # the consumers' upgrade handling applies


def test_channels_are_the_generated_names_file() -> None:
    names = json.loads((ROOT / "agentstream" / "data" / "channels.json").read_text(encoding="utf-8"))["channels"]
    assert tuple(names) == CHANNELS and names == sorted(names)
    assert {"whatsapp", "telegram", "system"} <= set(CHANNELS)
    with pytest.raises(ValidationError, match="not registered"):
        new_event("MessageReceived", business_id="b", user_id="u", channel="fax", payload={"content": "x"})


def test_a_v1_message_is_upcast_to_a_v3_text_message() -> None:
    v1 = raw_message(schemaVersion=1)
    v1["payload"] = {k: v for k, v in v1["payload"].items() if k not in ("kind", "payloadId", "reactsTo")}
    upcast = parse_event(v1)
    assert upcast.schemaVersion == 3 and upcast.payload.kind == "text"
    assert upcast.payload.payloadId is None and upcast.payload.reactsTo is None
    assert upcast.payload.content == "Bună ziua! 💇‍♀️ שלום"
    assert parse_event(upcast.to_json_dict()) == upcast


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_every_message_kind_round_trips(kind: str) -> None:
    event = new_event("MessageReceived", business_id="b", user_id="u", channel="whatsapp",
                      payload={"content": "👍", "kind": kind, "payloadId": "p1", "reactsTo": "e0"})
    again = parse_event(event.to_json_dict())
    assert (again.payload.kind, again.payload.payloadId, again.payload.reactsTo) == (kind, "p1", "e0")


def status(**payload: object) -> dict:
    body = {"replyEventId": "r1", "status": "read", "at": "2026-12-01T10:00:00.000Z", "externalId": "wamid.1"} | payload
    return new_event("ReplyStatusReported", business_id="b", user_id="u", channel="whatsapp",
                     payload=body).to_json_dict()


def test_a_reported_status_round_trips() -> None:
    event = parse_event(status(status="failed", error="Re-engagement message"))
    assert event.type == "ReplyStatusReported" and event.schemaVersion == 1
    assert (event.payload.status, event.payload.error, event.payload.at) == ("failed", "Re-engagement message",
                                                                              "2026-12-01T10:00:00.000Z")


@pytest.mark.parametrize("bad", [{"status": "sent"}, {"at": "2026-12-01T10:00:00"}, {"at": "2026-12-01T12:00:00+02:00"},
                                 {"at": "yesterday"}, {"replyEventId": None}, {"externalId": None}, {"extra": 1}])
def test_a_bad_status_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        status(**bad)


def _validator(name: str) -> jsonschema.Validator:
    schema = json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_the_generated_schemas_accept_what_the_models_write() -> None:
    reaction = new_event("MessageReceived", business_id="b", user_id="u", channel="telegram",
                         payload={"content": "", "kind": "reaction", "reactsTo": "e0"}).to_json_dict()
    assert list(_validator("MessageReceived.v3.json").iter_errors(reaction)) == []
    assert list(_validator("ReplyStatusReported.v1.json").iter_errors(status())) == []
    bad = [e.message for e in _validator("ReplyStatusReported.v1.json").iter_errors(status() | {"channel": 7})]
    assert bad and "is not of type 'string'" in bad[0]
    sticker = reaction | {"payload": reaction["payload"] | {"kind": "sticker"}}
    assert [e.message for e in _validator("MessageReceived.v3.json").iter_errors(sticker)] != []


def test_a_voice_note_and_what_became_of_it_round_trip_and_match_their_schemas() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    note = new_event("MessageReceived", business_id="b", user_id="u", channel="whatsapp", occurred_at=at,
                     payload={"content": "", "kind": "audio", "attachments": [{"id": "M1", "kind": "audio", "source": "meta"}]})
    assert parse_event(note.to_json_dict()).payload.attachments[0].model_dump(exclude_none=True)["source"] == "meta"
    said = new_event("MediaTranscribed", business_id="b", user_id="u", channel="whatsapp", occurred_at=at,
                     payload={"sourceEventId": note.eventId, "text": "Bună", "model": "whisper-1", "usage": {"seconds": 3}})
    kept = new_event("MediaStored", business_id="b", user_id="u", channel="whatsapp", occurred_at=at,
                     payload={"sourceEventId": note.eventId, "key": "media/b/u/ab", "contentType": "audio/ogg",
                              "size": 10, "sha256": "ab", "kind": "audio"})
    for event, name in ((note, "MessageReceived.v3.json"), (said, "MediaTranscribed.v1.json"), (kept, "MediaStored.v1.json")):
        assert parse_event(event.to_json_dict()) == event
        assert list(_validator(name).iter_errors(event.to_json_dict())) == []
    with pytest.raises(ValidationError):
        new_event("MediaStored", business_id="b", user_id="u", channel="whatsapp",
                  payload={"sourceEventId": "x", "key": "k", "contentType": "video/mp4", "size": 1, "sha256": "a", "kind": "video"})


def test_a_v2_message_is_read_as_v3() -> None:
    v2 = raw_message(schemaVersion=2)
    assert parse_event(v2).schemaVersion == 3


def test_writing_the_schemas_removes_a_version_no_longer_written(tmp_path: Path) -> None:
    (tmp_path / "MessageReceived.v1.json").write_text("{}")
    (tmp_path / "README.md").write_text("kept")
    write_schemas(tmp_path)
    assert not (tmp_path / "MessageReceived.v1.json").exists() and (tmp_path / "README.md").exists()
    assert (tmp_path / "MessageReceived.v3.json").exists() and (tmp_path / "ReplyStatusReported.v1.json").exists()


@pytest.mark.parametrize("change", [{"type": 7}, {"channel": 7}, {"businessId": ""}, {"occurredAt": "2026-01-01T10:00:00"}])
def test_invalid_events_are_refused(change: dict) -> None:
    with pytest.raises(ValidationError):
        parse_event(raw_message(**change))


def test_reply_id_is_derived_from_the_inbound() -> None:
    assert reply_event_id("e1") == reply_event_id("e1") != reply_event_id("e2")


def test_schemas_folder_is_current() -> None:
    rendered = render_schemas()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "schemas").glob("*.json")}
    assert on_disk == rendered, "schemas/ is stale: run `make schemas`"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.text() | st.integers(-2**53, 2**53)
    | st.floats(-1e15, 1e15).filter(lambda f: not f.is_integer() and abs(f) > 1e-100),  # DynamoDB's range
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _decimals(value: object) -> object:
    """What boto3 wants: floats as Decimal."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


@given(st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUES, max_size=6))
def test_item_conversion_matches_boto3_and_round_trips(item: dict) -> None:
    from agentstream.adapters.dynamo.client import from_item, to_item

    boto3_typed = {k: TypeSerializer().serialize(_decimals(v)) for k, v in item.items()}
    assert to_item(item) == boto3_typed
    assert from_item(to_item(item)) == item


def test_item_conversion_refuses_what_dynamodb_cannot_hold() -> None:
    from agentstream.adapters.dynamo.client import to_item

    with pytest.raises(ValueError):
        to_item({"x": float("nan")})
    with pytest.raises(TypeError):
        to_item({"x": object()})
