"""JSON Schemas of the events, generated from the pydantic models into `schemas/`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from agentstream.events import EVENT_TYPES, schema_version


def render_schemas() -> dict[str, str]:
    """File name → schema text for every event type."""
    return {
        f"{name}.v{schema_version(name)}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, model in sorted(EVENT_TYPES.items())
    }


def render_channels(names: Iterable[str]) -> str:
    """The text of `agentstream/data/channels.json` for the registered channel names (and
    "system"): sorted, one JSON document."""
    return json.dumps({"channels": sorted({*names, "system"})}, indent=2) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every event type's schema into `folder`; a type's schemas of other versions there
    (the version this build no longer writes) are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = render_schemas()
    for name in EVENT_TYPES:
        for old in folder.glob(f"{name}.v*.json"):
            if old.name not in rendered:
                old.unlink()
    paths = []
    for name, text in rendered.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
