"""The conversation status the owner sees (the messaging window: tests/unit/test_templates.py)."""

from datetime import datetime, timedelta, timezone

import pytest

from agentstream.projections.handoff import status_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(("session", "status"), [
    ({"status": "active"}, "ai"),
    ({"status": "active", "handoff": {"lastActivityAt": at(1), "ownerReplied": False}}, "waiting"),
    ({"status": "active", "handoff": {"lastActivityAt": at(1), "ownerReplied": True}}, "human"),
    ({"status": "active", "handoff": {"lastActivityAt": at(2.5), "ownerReplied": True}}, "ai"),  # timed out (120 min)
    ({"status": "resolved"}, "resolved"),
    ({"status": "abandoned", "handoff": {"lastActivityAt": at(1), "ownerReplied": False}}, "resolved"),
])
def test_the_status_the_owner_sees(session: dict, status: str) -> None:
    assert status_of(session, NOW, 120) == status
