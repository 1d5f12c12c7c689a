"""The projections every process folds the log into: the worker, replay, forget and reconcile
loop over this list. A new projection is a module in projections/ and one line here."""

from __future__ import annotations

from agentstream.projections.appointments import APPOINTMENTS
from agentstream.projections.base import Projection
from agentstream.projections.conversation import CONVERSATION
from agentstream.projections.facts import FACTS
from agentstream.projections.reminders import REMINDERS

PROJECTIONS: tuple[Projection, ...] = (
    CONVERSATION,
    FACTS,
    APPOINTMENTS,
    REMINDERS,
)


def by_name(name: str) -> Projection:
    """The registered projection called `name` (ValueError naming the known ones otherwise)."""
    for projection in PROJECTIONS:
        if projection.name == name:
            return projection
    raise ValueError(f"unknown projection {name!r}; known: {', '.join(p.name for p in PROJECTIONS)}")
