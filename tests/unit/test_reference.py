"""The generated reference in docs/reference/ is current (else: run `agentstream schemas`), and
the AsyncAPI document covers every topic the settings name and every event type, with the
payload schemas of schemas/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentstream import reference
from agentstream.asyncapi import document
from agentstream.cli import app
from agentstream.events import EVENT_TYPES, OUTBOUND_TYPES, schema_version
from agentstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "docs" / "reference"


@pytest.mark.parametrize("name", reference.PAGES)
def test_the_generated_reference_is_current(name: str) -> None:
    assert (FOLDER / name).read_text(encoding="utf-8") == reference.render_all(app)[name], "run `agentstream schemas`"


def test_the_reference_names_every_command_and_setting() -> None:
    cli, settings = (FOLDER / "cli.md").read_text(encoding="utf-8"), (FOLDER / "settings.md").read_text(encoding="utf-8")
    for command in ("up", "replay", "explain", "forget", "dlq list", "credentials rotate", "schemas"):
        assert f"## `agentstream {command}`" in cli
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "DYNAMODB_MESSIONS_TABLE", "AGENTSTREAM_SECRET_KEY", "META_GRAPH_BASE_URL"):
        assert f"`{variable}`" in settings
    assert "`AGENTSTREAM_SECRET_KEY` | str \\| None | unset" in settings  # a secret's value never appears


def test_the_served_openapi_document_is_the_generated_one() -> None:
    from agentstream.adapters.http.gateway import create_app

    served = TestClient(create_app(None)).get("/openapi.json").json()  # type: ignore[arg-type]
    assert served == json.loads((FOLDER / "openapi.json").read_text(encoding="utf-8"))


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_asyncapi_document_covers_every_topic_and_event_type() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"]: c for c in doc["channels"].values()}
    topics = {f.default for n, f in Settings.model_fields.items() if n.startswith("topic_")}
    assert set(addresses) == topics
    assert set(addresses["agent.events.v1"]["messages"]) == set(EVENT_TYPES)
    assert set(addresses["agent.replies.v1"]["messages"]) == set(OUTBOUND_TYPES)
    for operation in doc["operations"].values():
        channel = _resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            payload = _resolve(doc, _resolve(doc, message["$ref"])["$ref"])["payload"]
            assert _resolve(doc, payload["$ref"])["type"] == "object", channel["address"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_message_payload_is_the_event_schema_of_schemas_folder(event_type: str) -> None:
    doc = document()
    payload = _resolve(doc, doc["components"]["messages"][event_type]["payload"]["$ref"])
    on_disk = json.loads((ROOT / "schemas" / f"{event_type}.v{schema_version(event_type)}.json").read_text(encoding="utf-8"))
    assert payload["properties"].keys() == on_disk["properties"].keys()
    assert payload["required"] == on_disk["required"]
    assert payload["properties"]["schemaVersion"] == on_disk["properties"]["schemaVersion"]
