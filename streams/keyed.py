"""Per-key serial, cross-key concurrent execution with a bound on work in flight.

Jobs of one key (a conversation) run one after another in submission order; jobs of
different keys run concurrently, so a slow model call for one customer never delays another.
`submit` waits while `max_inflight` jobs are pending: that is the consumer's back-pressure.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[None]]


class KeyedExecutor:
    def __init__(self, max_inflight: int = 1000) -> None:
        self._slots = asyncio.Semaphore(max_inflight)
        self._queues: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.inflight = 0

    async def submit(self, key: str, job: Job) -> None:
        await self._slots.acquire()
        self.inflight += 1
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque([job])
        task = asyncio.create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue[0]
                try:
                    await job()
                except Exception:
                    log.exception("keyed.job_failed", key=key)
                finally:
                    queue.popleft()
                    self.inflight -= 1
                    self._slots.release()
        finally:
            del self._queues[key]
            if not self._queues:
                self._idle.set()

    async def join(self) -> None:
        """Wait until every submitted job has finished."""
        await self._idle.wait()

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
