"""One consumer loop for delivery and analytics (the worker stays a Faust agent).

The failure policy, the same for every consumer that runs here:
- records of one key (a conversation) are handled in order, records of different keys
  concurrently (`KeyedExecutor`);
- a failing record is retried with exponential backoff (`stamina`), then handed to the dead
  letter (the DLQ, with whatever the consumer records beside it); a `permanent` error skips the
  retries; a record that does not parse goes to the dead letter at once: a bad record never
  ends the loop and never holds another conversation;
- a record of a type or schemaVersion this build does not know pauses consumption: nothing
  after it of its key runs, its offset is never committed, and `run` raises `UpgradeNeeded`
  (the process says so and exits 3; the upgraded build reads it);
- anything else that goes wrong (Kafka, a dead letter that cannot be written) ends `run` with
  the error, and the process exits non-zero so its supervisor restarts it.
Offsets are committed per partition up to the first record not yet handled, so a restart
re-reads at most the records in flight (the handlers are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from agentstream.events import UnknownSchemaVersion
from agentstream.retry import RetryPolicy
from agentstream.streams.keyed import KeyedExecutor
from agentstream.streams.offsets import Offsets
from agentstream.streams.stopping import UpgradeNeeded

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Failure(Generic[T]):
    """A record given up on: `stage` is "parse" (it did not parse) or the runner's stage."""

    record: Any
    item: T | None
    stage: str
    error: str
    attempts: int


class _Stopped(Exception):
    """The process is stopping: the record is left unhandled (and uncommitted)."""


class ConsumerRunner(Generic[T]):
    """Runs `handle(item, attempt)` for each record of a subscribed aiokafka consumer.

    `parse(record)` turns a record into an item (None: nothing to do); it raises
    UnknownSchemaVersion for a record this build cannot read, anything else for a bad record.
    `dead_letter(failure)` records a record given up on. `commit(positions)` stores progress
    (default: the consumer group's commit)."""

    def __init__(self, consumer: Any, stage: str, parse: Callable[[Any], T | None],
                 handle: Callable[[T, int], Awaitable[None]], dead_letter: Callable[[Failure[T]], Awaitable[None]],
                 *, key_of: Callable[[Any, T], str] | None = None, policy: RetryPolicy = RetryPolicy(),
                 permanent: tuple[type[BaseException], ...] = (), max_inflight: int = 1000,
                 commit: Callable[[dict[TopicPartition, int]], Awaitable[None]] | None = None) -> None:
        self._consumer = consumer
        self.stage = stage
        self._parse = parse
        self._handle = handle
        self._dead_letter = dead_letter
        self._key_of = key_of or (lambda record, item: (record.key or b"").decode("utf-8", "replace"))
        self._policy = policy
        self._permanent = (*permanent, _Stopped, UpgradeNeeded, UnknownSchemaVersion)
        self._executor = KeyedExecutor(max_inflight)
        self._commit = commit or self._commit_group
        self.offsets = Offsets()
        self.upgrade_needed: str | None = None
        self._fatal: BaseException | None = None
        self._stopping = False
        self._paused_keys: set[str] = set()
        self._generation: dict[TopicPartition, int] = {}  # bumped when a partition is taken away
        self._running: dict[TopicPartition, int] = {}  # jobs started and not finished, per partition

    def listener(self, on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None) -> ConsumerRebalanceListener:
        """Pass to `consumer.subscribe`: partitions taken away are finished and committed first."""
        return _Listener(self, on_assigned)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; raises UpgradeNeeded (paused) or the error that ended the loop."""
        try:
            while not stop.is_set() and not self._halted:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    for record in records:
                        if self._halted:
                            break
                        await self._take(tp, record)
                await self._commit_done()
            self._stopping = not self._halted  # stopping: what has not started stays uncommitted
            await self._executor.join()
            await self._commit_done()
        except BaseException:
            self._stopping = True
            await self._executor.cancel()
            raise
        if self._fatal is not None:
            raise self._fatal
        if self.upgrade_needed is not None:
            log.error(f"{self.stage}.upgrade_needed", error=self.upgrade_needed[:300], hint="upgrade this process")
            raise UpgradeNeeded(self.upgrade_needed)

    @property
    def _halted(self) -> bool:
        return self.upgrade_needed is not None or self._fatal is not None

    async def _take(self, tp: TopicPartition, record: Any) -> None:
        self.offsets.take(tp, record.offset)
        try:
            item = self._parse(record)
        except UnknownSchemaVersion as exc:
            self.upgrade_needed = self.upgrade_needed or str(exc)  # never done: never committed nor dead-lettered
            return
        except Exception as exc:  # bad JSON, a bad event, no value: never ends the loop
            await self._give_up(tp, record, None, "parse", exc, 0)
            return
        if item is None:
            self.offsets.done(tp, record.offset)
            return
        key, generation = self._key_of(record, item), self._generation.get(tp, 0)
        await self._executor.submit(key, lambda: self._job(tp, record, item, key, generation))

    async def _job(self, tp: TopicPartition, record: Any, item: T, key: str, generation: int) -> None:
        if self._stopping or self._fatal is not None or key in self._paused_keys:
            return  # the process stops, or an earlier record of this key paused: left uncommitted
        if generation != self._generation.get(tp, 0):
            return  # its partition was taken away before it started: the new owner handles it
        self._running[tp] = self._running.get(tp, 0) + 1
        try:
            await self._attempts(tp, record, item, key)
        finally:
            self._running[tp] -= 1

    async def _attempts(self, tp: TopicPartition, record: Any, item: T, key: str) -> None:
        attempts = 0
        try:
            async for attempt in self._policy.attempts_of(self._retryable):
                with attempt:
                    attempts = attempt.num
                    if self._stopping or self._fatal is not None:
                        raise _Stopped()
                    await self._handle(item, attempt.num)
        except _Stopped:
            return
        except (UpgradeNeeded, UnknownSchemaVersion) as exc:
            self._paused_keys.add(key)
            self.upgrade_needed = self.upgrade_needed or str(exc)
            return
        except Exception as exc:
            await self._give_up(tp, record, item, self.stage, exc, attempts)
            return
        self.offsets.done(tp, record.offset)

    def _retryable(self, exc: Exception) -> bool:
        if isinstance(exc, self._permanent):
            return False
        log.warning(f"{self.stage}.retry", error=f"{type(exc).__name__}: {exc}"[:300])
        return True

    async def _give_up(self, tp: TopicPartition, record: Any, item: T | None, stage: str, exc: BaseException,
                       attempts: int) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.error(f"{self.stage}.gave_up", stage=stage, attempts=attempts, error=error[:300],
                  at=f"{tp.topic}/{tp.partition}@{record.offset}")
        try:
            await self._dead_letter(Failure(record, item, stage, error, attempts))
        except Exception as dead:  # nowhere to put it: stop loudly, uncommitted
            log.error(f"{self.stage}.dead_letter_failed", error=f"{type(dead).__name__}: {dead}"[:300])
            self._fatal = dead
            return
        self.offsets.done(tp, record.offset)

    async def _commit_done(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        positions = self.offsets.advanced()
        if not positions:
            return
        try:
            await self._commit(positions)
        except (CommitFailedError, IllegalStateError) as exc:  # a rebalance: the next commit catches up
            log.warning(f"{self.stage}.commit_deferred", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        self.offsets.committed(positions)

    async def _commit_group(self, positions: dict[TopicPartition, int]) -> None:
        owned = self._consumer.assignment()
        mine = {tp: n for tp, n in positions.items() if tp in owned}
        if mine:
            await self._consumer.commit(mine)

    async def hand_back(self, partitions: set[TopicPartition]) -> None:
        """Before the partitions go to another process: their records not started yet are dropped
        (left uncommitted, for the new owner), the ones running are finished, and what is done is
        committed. Waiting for the whole queue instead could outlast the group's rebalance, and
        then two processes would handle the same records at once (a reply sent twice)."""
        for tp in partitions:
            self._generation[tp] = self._generation.get(tp, 0) + 1
        while any(self._running.get(tp, 0) for tp in partitions):
            await asyncio.sleep(0.02)
        await self._commit_done()
        self.offsets.forget(partitions)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner[Any], on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None) -> None:
        self._runner = runner
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._runner.hand_back(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self._on_assigned is not None:
            await self._on_assigned(set(assigned))
