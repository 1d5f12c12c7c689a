"""The registered channels as the pure side sees them (the envelope, the folds): read from
`data/channels.json`, which `agentstream schemas` generates from the channel registry."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parent / "data" / "channels.json"


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def names() -> tuple[str, ...]:
    return tuple(_catalog()["channels"])


def _spec(channel: str) -> dict[str, Any]:
    return _catalog()["spec"].get(channel, {})


def window_hours(channel: str) -> int | None:
    """Free text only this long after the customer's last message (None: no such window)."""
    return _spec(channel).get("windowHours")


def title(channel: str) -> str:
    return _spec(channel).get("title", channel)


def identity(channel: str) -> str | None:
    """What a customer's id on `channel` is (phone, email), if anything."""
    return _spec(channel).get("identity")


def source(channel: str) -> str:
    """The seed's message metadata.source for `channel`."""
    return _spec(channel).get("source", "webhook")


def client_ids(channel: str) -> bool:
    """Whether `channel`'s message ids are chosen by the client (unique per customer only)."""
    return bool(_spec(channel).get("clientIds"))


def delivery(channel: str) -> str:
    return _spec(channel).get("delivery", "none")


def can(channel: str, what: str) -> bool:
    """Whether `channel` can show `what` (text, template, image…)."""
    return what in _spec(channel).get("can", [])
