"""Which events of a stream the folds skip: those an `EventSkipped` names and no later
`SkipRevoked` brought back (pure; the worker, replay, explain and forget agree on it).

A skip record always comes after the event it names (the worker appends it once the event has
failed every attempt), so a fold of a stream's events must know the skips before it reaches the
event: `without_skipped` looks at the whole list first.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentstream.events import Event, EventSkipped, SkipRevoked

SKIP_TYPES = ("EventSkipped", "SkipRevoked")


def skipped_seqs(events: Iterable[Event]) -> frozenset[int]:
    """The seqs skipped after the last of these skip records (in seq order) that names each."""
    skipped: set[int] = set()
    for event in sorted(events, key=lambda e: e.seq):
        if isinstance(event, EventSkipped):
            skipped.add(event.payload.seq)
        elif isinstance(event, SkipRevoked):
            skipped.discard(event.payload.seq)
    return frozenset(skipped)


def without_skipped(events: Iterable[Event]) -> list[Event]:
    """The events the folds apply: all but the skipped ones (the skip records stay: they only
    move a projection's position)."""
    events = list(events)
    skipped = skipped_seqs(events)
    return [e for e in events if e.seq not in skipped] if skipped else events
