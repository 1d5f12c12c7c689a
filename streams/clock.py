"""The wall clock as a port: the system's, or one a test sets and moves."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentstream.events import utc_now


class SystemClock:
    def now(self) -> datetime:
        return utc_now()


class FakeClock:
    """A clock that stands still until moved (`set`, `advance`)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a FakeClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, by: timedelta) -> None:
        self._at += by


SYSTEM_CLOCK = SystemClock()
