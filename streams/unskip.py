"""A skipped event brought back (`dlq retry`, a `SkipRevoked` in the log): answered if it is an
unanswered inbound, then every projection folded again from the log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentstream import metrics
from agentstream.events import Event, MessageReceived, SkipRevoked
from agentstream.projections.base import FoldConfig, Put, fold_events
from agentstream.projections.skips import without_skipped
from agentstream.streams.batch import Folding
from agentstream.streams.dead_letters import refold
from agentstream.streams.ports import EventLog, StateStore
from agentstream.streams.replier import Replier
from agentstream.streams.reply_policy import States
from agentstream.streams.state_cache import StateCache

AfterReply = Callable[[MessageReceived, dict[str, Any]], Awaitable[None]]  # (inbound, business info)
Answers = Callable[[Event, States, dict[str, list[Put]], FoldConfig], bool]  # whether the AI answers an event


class Unskipper:
    def __init__(self, store: EventLog, projections: StateStore, folding: Folding, replier: Replier,
                 states: StateCache, answers: Answers, after_reply: AfterReply | None) -> None:
        self._store = store
        self._projections = projections
        self._folding = folding
        self._replier = replier
        self._states = states
        self._answers = answers
        self.after_reply = after_reply

    async def unskip(self, revocation: SkipRevoked, low: int) -> None:
        """A skipped event brought back (`dlq retry`): if it is an inbound with no reply yet, it
        is answered with the context it would have had; then (unless done already) every
        projection is folded again from the log up to the revocation. A failure writes nothing
        (the worker skips the event again)."""
        events = await self._store.read(revocation.streamId, limit=revocation.seq)
        info, config = await self._folding.settings(revocation.businessId)
        registry = self._folding.registry
        inbound = next((e for e in events if e.seq == revocation.payload.seq), None)
        answered = None
        if isinstance(inbound, MessageReceived):
            before = [e for e in without_skipped(events) if e.seq < inbound.seq]
            prior = {p.name: fold_events(p, before, config, inbound.businessId, inbound.userId)[0] for p in registry}
            at_inbound, puts = self._folding.fold(prior, inbound, config)
            if self._answers(inbound, at_inbound, puts, config):
                _, new = await self._replier.reply(inbound, at_inbound, info)
                answered = inbound if new else None
        if revocation.seq > low:
            states = await refold(self._projections, registry, events, config, revocation.businessId,
                                  revocation.userId)
            self._states.remember(revocation.streamId, states)
            metrics.WORKER_EVENTS.labels(type=revocation.type, outcome="applied").inc()
        if answered is not None and self.after_reply:
            await self.after_reply(answered, info)
