"""What a projection is: a name, the items it owns and a pure `apply(state, event) -> (state, puts)`.

A projection keeps one state item per customer (PK businessId, SK userId) in a table of its
own; that item carries `lastSeq` (its position in the customer's stream) and `version`, and is
written in the same transaction as the other items the event changed, so a position never
runs ahead of, or behind, its effects. The worker, replay, forget and reconcile loop over the
registry (`agentstream.registry`); a new projection is one module here and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentstream.events import Event
from agentstream.projections.skips import without_skipped

Item = dict[str, Any]


@dataclass(frozen=True)
class FoldConfig:
    """Business settings a fold may read (the version in force at the event's time)."""

    idle_minutes: int = 60
    business_type: str = "general"
    timezone: str = "UTC"
    opening_hours: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    handoff_timeout_minutes: int = 120  # a handed-off conversation goes back to the AI after this long
    nudge_after_minutes: float = 0  # idle nudges: off (0) unless shorter than idle_minutes (fractions allowed)
    nudge_texts: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # language -> nudge text
    language: str = "en"  # the business's language (a nudge's when the customer's is unknown)
    templates: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # settings.templates
    remind_before_minutes: tuple[int, ...] = ()  # settings.remindBeforeMinutes, largest first
    closed_days: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # closedDays: local date -> name


@dataclass(frozen=True)
class Put:
    """One item a projection writes: its table (a field of `Tables`), the item, and the attribute
    holding the seq of the event that last changed it (puts are monotonic on it)."""

    table: str
    item: Item
    position: str = "lastSeq"
    version: int = 0  # a state item's projection version (0: not a state item)

    @property
    def written_once(self) -> bool:
        """An item only its own event writes (keyed by that event, position `seq`), never changed."""
        return self.position == "seq"


class Projection(Protocol):
    """A pure fold of one customer's events into items."""

    name: str
    table: str  # the `Tables` field of its per-customer state item (keys businessId, userId)
    owns: dict[str, tuple[str, ...]]  # every `Tables` field it writes -> that table's key attributes
    version: int  # bumped when the fold's output changes: stored states of older versions are refolded

    def empty(self, business_id: str, user_id: str) -> Item: ...

    def apply(self, state: Item, event: Event, config: FoldConfig) -> tuple[Item, list[Put]]: ...


def position(state: Item) -> int:
    return int(state.get("lastSeq", 0))


def state_version(state: Item) -> int:
    """A state item's version (items written before versions were recorded are version 1)."""
    return int(state.get("version", 1))


def fold_events(projection: Projection, events: Iterable[Event], config: FoldConfig | Callable[[Event], FoldConfig],
                business_id: str, user_id: str) -> tuple[Item, list[Put]]:
    """A customer's events (seq order, duplicates and skipped events left out) folded: the final state and every
    item put along the way, the last put of each item only (in first-put order). `config` may
    be a function of the event (the business settings in force at its time)."""
    config_of = config if callable(config) else lambda _: config
    state = projection.empty(business_id, user_id)
    puts: dict[tuple[Any, ...], Put] = {}
    for event in sorted(without_skipped(events), key=lambda e: e.seq):
        state, changed = projection.apply(state, event, config_of(event))
        for put in changed:
            puts[(put.table, key_of(projection, put))] = put
    return state, list(puts.values())


def key_of(projection: Projection, put: Put) -> tuple[Any, ...]:
    """The put item's key in its table."""
    return tuple(put.item[k] for k in projection.owns[put.table])
