"""The worker's cache of conversations' projection states, loaded from the tables once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from agentstream.events import Event
from agentstream.projections.base import Item, Projection, position, state_version
from agentstream.streams.gaps import GapFiller
from agentstream.streams.ports import EventLog, StateStore
from agentstream.streams.reply_policy import States


def applied_up_to(states: States) -> int:
    """The seq every projection of a conversation has applied (the lowest position)."""
    return min(position(s) for s in states.values())


def _current(projection: Projection, stored: Item | None, event: Event) -> Item:
    """A stored state, or the empty one when there is none or an older fold version wrote it."""
    if stored is None or state_version(stored) < projection.version:
        return projection.empty(event.businessId, event.userId)
    return stored


class StateCache:
    """Each cached conversation's state in every projection (least recently used first out);
    what the worker read of a conversation's log goes with its state (`GapFiller`)."""

    def __init__(self, store: EventLog, projections: StateStore, registry: Sequence[Projection], gaps: GapFiller,
                 size: int) -> None:
        self._store = store
        self._projections = projections
        self._registry = tuple(registry)
        self._gaps = gaps
        self._size = size
        self._cache: OrderedDict[str, States] = OrderedDict()
        self._outdated: dict[str, int] = {}  # streams just loaded with an older fold's state: how far it had got

    def cached(self, stream: str) -> bool:
        return stream in self._cache

    def applied(self, stream: str, seq: int) -> bool:
        """Whether every projection of a cached conversation has applied its event `seq`. Never
        for a first event: a stream starts again at 1 after `forget`."""
        states = self._cache.get(stream)
        return states is not None and 1 < seq <= applied_up_to(states)

    def outdated(self, stream: str) -> int:
        """How far an older fold version's state just loaded had got (0: none); asked once."""
        return self._outdated.pop(stream, 0)

    async def load(self, event: Event) -> States | None:
        """The conversation's state in every projection; None for an event of a user erased
        after it happened. A state of an older fold version starts again from empty."""
        cached = self._cache.get(event.streamId)
        if cached is not None:
            self._cache.move_to_end(event.streamId)
            return cached
        stored = await self._projections.load_states(self._registry, event.businessId, event.userId)
        if all(s is None for s in stored.values()):
            forgotten_at = await self._store.forgotten_at(event.businessId, event.userId)
            if forgotten_at is not None and event.occurredAt <= forgotten_at:
                return None
        outdated = [position(s) for p in self._registry if (s := stored[p.name]) is not None and state_version(s) < p.version]
        if outdated:  # the items that fold wrote beside its state reach that far: the new fold goes as far first
            self._outdated[event.streamId] = max(outdated)
        return {p.name: _current(p, stored[p.name], event) for p in self._registry}

    def drop(self, stream: str) -> None:
        """The stream's state is to come from the tables again."""
        self._cache.pop(stream, None)
        self._gaps.forget(stream)

    def remember(self, stream: str, states: States) -> None:
        self._cache[stream] = states
        self._cache.move_to_end(stream)
        while len(self._cache) > self._size:
            self._gaps.evicted(self._cache.popitem(last=False)[0])
