"""The vendors' 24-hour customer-service window for a person's free-text message, and the
conversation status the owner sees."""

from datetime import datetime, timedelta, timezone

import pytest

from agentstream.adapters.http.owner_service import window_refusal
from agentstream.projections.handoff import status_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(("channel", "hours_ago", "refused"), [
    ("whatsapp", 1, False), ("whatsapp", 23.99, False), ("whatsapp", 24.01, True), ("whatsapp", 72, True),
    ("messenger", 2, False), ("messenger", 25, True),
    ("sms", 500, False), ("websocket", 500, False), ("gmail", 500, False), ("rest", 500, False),
])
def test_the_window_closes_24_hours_after_the_customers_last_message(channel: str, hours_ago: float, refused: bool) -> None:
    why = window_refusal(channel, at(hours_ago), NOW)
    assert (why is not None) == refused
    if refused:
        assert "24-hour customer-service window" in why and at(hours_ago) in why


def test_no_customer_message_in_the_session_is_outside_the_window() -> None:
    assert "has not written" in window_refusal("whatsapp", None, NOW)
    assert window_refusal("sms", None, NOW) is None


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
