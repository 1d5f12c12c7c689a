"""Per-conversation order with concurrency across conversations."""

from __future__ import annotations

import asyncio

from agentstream.streams.keyed import KeyedExecutor


async def test_order_per_key_and_no_head_of_line_blocking() -> None:
    """The slow conversation's first job waits until every job of the fast one has run: with
    head-of-line blocking they never would (the wait below would time out)."""
    ex = KeyedExecutor(max_inflight=100)
    done: list[tuple[str, int]] = []
    fast_all_done = asyncio.Event()

    def job(key: str, n: int, until: asyncio.Event | None = None):
        async def run() -> None:
            if until is not None:
                await until.wait()
            await asyncio.sleep(0)
            done.append((key, n))
            if sum(k == "fast" for k, _ in done) == 5:
                fast_all_done.set()
        return run

    await ex.submit("slow", job("slow", 1, until=fast_all_done))
    await ex.submit("slow", job("slow", 2))
    for i in range(5):
        await ex.submit("fast", job("fast", i))
    await asyncio.wait_for(ex.join(), 60)
    assert [n for k, n in done if k == "slow"] == [1, 2]
    assert [n for k, n in done if k == "fast"] == list(range(5))
    assert done.index(("fast", 4)) < done.index(("slow", 1)), "the fast conversation finished first"


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
