"""Per-conversation order with concurrency across conversations."""

from __future__ import annotations

import asyncio
import time

from agentstream.streams.keyed import KeyedExecutor


async def test_order_per_key_and_no_head_of_line_blocking() -> None:
    ex = KeyedExecutor(max_inflight=100)
    done: list[tuple[str, int, float]] = []
    start = time.monotonic()

    def job(key: str, n: int, delay: float):
        async def run() -> None:
            await asyncio.sleep(delay)
            done.append((key, n, time.monotonic() - start))
        return run

    await ex.submit("slow", job("slow", 1, 0.5))
    await ex.submit("slow", job("slow", 2, 0.0))
    for i in range(5):
        await ex.submit("fast", job("fast", i, 0.01))
    await ex.join()
    assert [n for k, n, _ in done if k == "slow"] == [1, 2]
    assert [n for k, n, _ in done if k == "fast"] == list(range(5))
    fast_finished = max(t for k, _, t in done if k == "fast")
    slow_first = min(t for k, _, t in done if k == "slow")
    assert fast_finished < slow_first


async def test_a_failing_job_does_not_stop_its_conversation() -> None:
    ex = KeyedExecutor()
    seen: list[int] = []

    async def boom() -> None:
        raise RuntimeError("x")

    async def ok() -> None:
        seen.append(1)

    await ex.submit("k", boom)
    await ex.submit("k", ok)
    await ex.join()
    assert seen == [1] and ex.inflight == 0


async def test_backpressure_bounds_inflight() -> None:
    ex = KeyedExecutor(max_inflight=2)
    gate = asyncio.Event()

    async def wait() -> None:
        await gate.wait()

    await ex.submit("a", wait)
    await ex.submit("b", wait)
    third = asyncio.create_task(ex.submit("c", wait))
    await asyncio.sleep(0.05)
    assert not third.done()
    gate.set()
    await third
    await ex.join()
