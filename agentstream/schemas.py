"""JSON Schemas of the events, generated from the pydantic models into `schemas/`."""

from __future__ import annotations

import json
from pathlib import Path

from agentstream.events import EVENT_TYPES, schema_version


def render_schemas() -> dict[str, str]:
    """File name → schema text for every event type."""
    return {
        f"{name}.v{schema_version(name)}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, model in sorted(EVENT_TYPES.items())
    }


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_schemas().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
