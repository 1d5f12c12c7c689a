"""The long-lived processes' event loop (EVENT_LOOP): uvloop by default, asyncio's on request."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvloop

from agentstream import loops
from agentstream.settings import Settings, SettingsError, load_settings


def _run(value: int, loop: str) -> Any:
    """`loops.run` in a thread of its own, as a process's main thread would: it leaves the test
    session's own event loop alone."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(loops.run, _running_loop_and(value), loop).result()


async def _running_loop_and(value: int) -> tuple[asyncio.AbstractEventLoop, int]:
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), value


def test_uvloop_runs_the_coroutine_and_returns_its_result() -> None:
    loop, value = _run(7, "uvloop")
    assert isinstance(loop, uvloop.Loop) and value == 7


def test_asyncio_names_asyncio_own_loop() -> None:
    loop, value = _run(8, "asyncio")
    assert not isinstance(loop, uvloop.Loop) and value == 8


def test_the_setting_defaults_to_uvloop_and_refuses_other_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_LOOP", raising=False)
    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="EVENT_LOOP"):
        load_settings()
