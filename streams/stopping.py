"""Waiting that a stop request cuts short (the long-running loops of every process), and the
stop of a consumer that meets an event this build cannot read."""

from __future__ import annotations

import asyncio


UPGRADE_EXIT_CODE = 3


class UpgradeNeeded(Exception):
    """A record this build cannot read (a type or schemaVersion a newer build wrote): the
    consumer stops without acknowledging it, says so, and the upgraded process reads it."""


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
