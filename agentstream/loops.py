"""The event loop the long-lived processes (and the benches weighing them) run on: EVENT_LOOP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (with uvicorn[standard], on Linux and macOS):
    the socket reads, writes and wake-ups that make up much of a turn cost less CPU on it
    (README, Benchmarks). asyncio's own loop (None) for `asyncio`, or without uvloop."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """`asyncio.run(main)` on the event loop named."""
    with asyncio.Runner(loop_factory=event_loop_factory(loop)) as runner:
        return runner.run(main)
