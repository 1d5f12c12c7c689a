"""Every setting says what it is for, in one line, and the generated reference shows it: a new
setting without a description fails here."""

from __future__ import annotations

from typing import Any

from agentstream import reference
from agentstream.settings import MediaSettings, Settings, Tables

MODELS = (Settings, Tables, MediaSettings)
FIELDS = [(model, name) for model in MODELS for name in model.model_fields]


def _env_names(model: type[Any], name: str) -> list[str]:
    return reference._names(model.model_fields[name], name)


def test_every_setting_has_a_one_line_description() -> None:
    missing = [f"{model.__name__}.{name}" for model, name in FIELDS
               if not (model.model_fields[name].description or "").strip()]
    assert missing == [], "give these settings a Field(description=...) saying what they are for"


def test_a_description_is_one_sentence_on_one_line() -> None:
    texts = {f"{model.__name__}.{name}": model.model_fields[name].description or "" for model, name in FIELDS}
    assert [n for n, t in texts.items() if "\n" in t or t != t.strip() or not t.endswith(".")] == []


UNITS = {"_ms": ("_MS", "milliseconds"), "_s": ("_S", "seconds"), "_days": ("_DAYS", "days"),
         "_minutes": ("_MINUTES", "minutes")}


def test_a_unit_the_variable_does_not_name_is_in_the_description() -> None:
    unsaid = [f"{model.__name__}.{name}" for model, name in FIELDS for suffix, (env_suffix, word) in UNITS.items()
              if name.endswith(suffix) and not all(e.endswith(env_suffix) for e in _env_names(model, name))
              and word not in (model.model_fields[name].description or "").lower()]
    assert unsaid == []


def test_the_reference_shows_what_each_setting_does() -> None:
    page = reference.render_settings()
    assert "| variable | type | default | limits | what it does |" in page
    for model, name in FIELDS:
        field = model.model_fields[name]
        if field.default_factory is not None:
            continue  # a group of settings, listed under its own heading
        row = next(line for line in page.splitlines() if line.startswith(f"| `{_env_names(model, name)[0]}`"))
        assert row.endswith(f"| {reference._cell(field.description)} |"), row
