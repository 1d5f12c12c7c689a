"""The open bursts of the conversations this worker answers: when each is due, the record held
unacked until the reply that covers the burst is in the log, and that reply.

No store of its own: the record that opened a burst is not acked until the covering reply is
durable, so the consumer's committed offset never passes an unanswered message. A worker killed
(or a partition moved) inside a window loses nothing: the next one reads the record again,
finds the burst's inbounds uncovered in the log (`recover`) and answers them once. The reply's
id and idempotency key are the first inbound's, so a worker that sees a longer burst after a
restart still finds the reply it wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from agentstream import metrics
from agentstream.events import Event, MessageReceived, ReplyGenerated
from agentstream.projections.conversation import handed_off
from agentstream.projections.kinds import needs_reply
from agentstream.streams.batch import Folding
from agentstream.streams.bursts import BurstWindow, arrived, ask_again, uncovered, wait_s, window_of
from agentstream.streams.clock import SYSTEM_CLOCK
from agentstream.streams.ports import Clock, EventLog
from agentstream.streams.reply_policy import REPLIES_FOLLOW, States
from agentstream.streams.state_cache import StateCache, applied_up_to

log = structlog.get_logger(__name__)
RETRY_S = 1.0  # a reply that failed (a store or model error) is tried again after this
Job = Callable[[], Awaitable[None]]
Submit = Callable[[str, Job], Awaitable[None]]
AfterReply = Callable[[MessageReceived, dict[str, Any]], Awaitable[None]]


@dataclass
class OpenBurst:
    """A conversation's unanswered inbounds from `first` on, as far as this worker knows."""

    first: MessageReceived
    window: BurstWindow
    first_at: float  # monotonic seconds
    last_at: float
    holds: list[Callable[[], None]] = field(default_factory=list)  # acks of the records held for it
    inbound_seen: int = 0  # the highest inbound seq the consumer has taken (maybe still queued)
    dropped: dict[str, int] = field(default_factory=dict)  # tokens of drafts dropped so far
    timer: asyncio.TimerHandle | None = None


class BurstKeeper:
    """Opens, extends, times and answers bursts; one reply job per conversation at a time runs
    through the worker's keyed executor (`bind`), in order with the conversation's events."""

    def __init__(self, store: EventLog, states: StateCache, folding: Folding, replier: Any,
                 after_reply: AfterReply | None = None, default_quiet_ms: int | None = None,
                 clock: Clock = SYSTEM_CLOCK, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._states = states
        self._folding = folding
        self._replier = replier
        self._after_reply = after_reply
        self._default_quiet = default_quiet_ms
        self._clock = clock
        self._mono = monotonic
        self._open: dict[str, OpenBurst] = {}
        self._opened: set[str] = set()  # streams whose burst the record being handled opened
        self._submit: Submit | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, submit: Submit) -> None:
        """Reply jobs go through `submit(stream, job)` (the worker's keyed executor)."""
        self._submit = submit

    def window(self, info: dict[str, Any], channel: str) -> BurstWindow:
        return window_of(info, channel, self._default_quiet)

    def is_open(self, stream: str) -> bool:
        return stream in self._open

    def add(self, inbound: MessageReceived, window: BurstWindow) -> None:
        """An inbound that needs a reply joins its conversation's burst (or opens one)."""
        now = self._mono()
        burst = self._open.get(inbound.streamId)
        if burst is None:
            at = arrived(inbound.occurredAt, self._clock.now(), now)
            burst = self._open[inbound.streamId] = OpenBurst(inbound, window, at, now)
            self._opened.add(inbound.streamId)
        else:
            burst.last_at, burst.window = now, window
        self._schedule(inbound.streamId, wait_s(burst.window, burst.first_at, burst.last_at, now))

    def recover(self, inbounds: list[MessageReceived], window: BurstWindow) -> None:
        """Uncovered inbounds found in the log (a record read again after a restart or a
        rebalance): their burst, timed from their event times."""
        now, wall = self._mono(), self._clock.now()
        burst = OpenBurst(inbounds[0], window, arrived(inbounds[0].occurredAt, wall, now),
                          arrived(inbounds[-1].occurredAt, wall, now))
        self._open[inbounds[0].streamId] = burst
        self._opened.add(inbounds[0].streamId)
        log.info("worker.burst_recovered", streamId=inbounds[0].streamId, inbounds=len(inbounds))
        self._schedule(inbounds[0].streamId, wait_s(window, burst.first_at, burst.last_at, now))

    def take_hold(self, stream: str) -> bool:
        """Whether the record just handled opened a burst: it is held (`hold`), not acked."""
        if stream in self._opened:
            self._opened.discard(stream)
            return stream in self._open
        return False

    def hold(self, stream: str, ack: Callable[[], None]) -> None:
        burst = self._open.get(stream)
        if burst is None:
            ack()
        else:
            burst.holds.append(ack)

    def saw_inbound(self, stream: str, seq: int) -> None:
        """The consumer took the conversation's inbound `seq` (maybe queued behind a reply job)."""
        burst = self._open.get(stream)
        if burst is not None and seq > burst.inbound_seen:
            burst.inbound_seen = seq

    def revoked(self) -> list[str]:
        """Partitions were revoked: every burst is dropped unanswered, its records never acked
        (they are read again from the committed offsets, here or by another worker); the
        conversations it dropped."""
        streams = list(self._open)
        for burst in self._open.values():
            if burst.timer:
                burst.timer.cancel()
        self._open.clear()
        self._opened.clear()
        return streams

    def _schedule(self, stream: str, delay: float) -> None:
        burst = self._open[stream]
        if burst.timer:
            burst.timer.cancel()
        burst.timer = asyncio.get_running_loop().call_later(delay, self._due, stream, burst)

    def _due(self, stream: str, burst: OpenBurst) -> None:
        if self._open.get(stream) is not burst:
            return
        burst.timer = None
        job: Job = lambda: self._answer(stream, burst)  # noqa: E731
        task = asyncio.ensure_future(self._submit(stream, job) if self._submit else job())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self, stream: str, burst: OpenBurst) -> None:
        if self._open.get(stream) is burst:
            del self._open[stream]
        for ack in burst.holds:
            ack()

    async def _answer(self, stream: str, burst: OpenBurst) -> None:
        """The reply job: when due, the one reply to the burst (or, if the customer wrote during
        the model call within the window, again later with the whole burst)."""
        if self._open.get(stream) is not burst:
            return  # answered, or dropped by a revocation
        wait = wait_s(burst.window, burst.first_at, burst.last_at, self._mono())
        if wait > 0:
            self._schedule(stream, wait)
            return
        try:
            done = await self._reply(stream, burst)
        except Exception as exc:  # noqa: BLE001 - the record stays held; tried again
            log.warning("worker.burst_reply_failed", streamId=stream, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            if self._open.get(stream) is burst:
                self._schedule(stream, RETRY_S)
            return
        if done:
            self._close(stream, burst)

    async def _reply(self, stream: str, burst: OpenBurst) -> bool:
        """Answer the burst's uncovered inbounds; False when it stays open (asked again later)."""
        states = await self._states.load(burst.first)
        if states is None:
            return True  # the customer was erased
        info, config = await self._folding.settings(burst.first.businessId)
        todo = await self.unanswered(burst.first, states)
        if not todo or handed_off(states[REPLIES_FOLLOW], todo[-1], config):
            return True  # answered by another worker, or a person has the conversation: covered by the handoff
        log.info("worker.burst_due", streamId=stream, covers=[m.seq for m in todo], applied=applied_up_to(states),
                 seen=burst.inbound_seen)
        draft = await self._replier.draft_burst(todo, states, info)
        if self._open.get(stream) is not burst:
            return False  # revoked during the model call: another worker answers
        if burst.inbound_seen > todo[-1].seq and ask_again(burst.window, burst.first_at, self._mono()):
            self._dropped(stream, burst, draft)
            self._schedule(stream, burst.window.quiet_ms / 1000)
            return False
        draft = _with_dropped(draft, burst.dropped)
        reply, new = await self._replier.append_reply(draft, todo[0])
        rest = uncovered(todo, [reply]) if isinstance(reply, ReplyGenerated) else []
        if rest:  # the log held a shorter reply with this id (a worker before a restart): the rest is a burst of its own
            burst.first = rest[0]
            self._schedule(stream, 0)
            return False
        await self._replier.hand_off_if_asked(todo[-1], reply)
        if new and self._after_reply:
            await self._after_reply(todo[-1], info)
        return True

    async def unanswered(self, first: Event, states: States) -> list[MessageReceived]:
        """The inbounds from `first` up to what the projections applied that need a reply and
        that no reply in the log covers."""
        upto = applied_up_to(states)
        events = await self._store.read(first.streamId, after_seq=first.seq - 1)
        inbounds = [e for e in events if isinstance(e, MessageReceived) and e.seq <= upto and needs_reply(e)]
        return uncovered(inbounds, events)

    def _dropped(self, stream: str, burst: OpenBurst, draft: Event) -> None:
        usage: Any = getattr(draft.payload, "usage", None)
        for name in ("promptTokens", "completionTokens"):
            burst.dropped[name] = burst.dropped.get(name, 0) + int(getattr(usage, name, 0) or 0)
        metrics.DRAFTS_DROPPED.inc()
        log.info("worker.draft_dropped", streamId=stream, usage=burst.dropped)


def _with_dropped(draft: Event, dropped: dict[str, int]) -> Event:
    """The reply recording the tokens of the drafts dropped before it (they were paid for)."""
    if not dropped:
        return draft
    payload = draft.payload.model_copy(update={"droppedUsage": draft.payload.droppedUsage.model_copy(update=dropped)})  # type: ignore[union-attr]
    return draft.model_copy(update={"payload": payload})
