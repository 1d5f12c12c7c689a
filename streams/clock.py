"""The wall clock as a port: the system's, or one a test sets and moves."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

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


class FileClock:
    """The time written in a file (ISO-8601 UTC), for tests that move the time of real processes;
    the system's time while the file is missing or empty."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def now(self) -> datetime:
        try:
            text = self._path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else utc_now()


SYSTEM_CLOCK = SystemClock()


def clock_from(path: str | None) -> SystemClock | FileClock:
    """The clock the CLOCK_FILE setting names, else the system's."""
    return FileClock(path) if path else SYSTEM_CLOCK
