"""The bookings' slot items rebuilt (or verified) by replay: each slot any appointment was ever
confirmed in is set to the number of appointments holding it now, whatever it held (a set, never
an add, so a replay beside the live commands cannot count one twice). Only a replay of whole
businesses does it: a slot is shared by every customer of the business."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from agentstream.projections.booking_rules import BookingRules, held_by, rules_of


class SlotStore(Protocol):
    async def set_side(self, business_id: str, name: str, values: dict[str, Any]) -> None: ...

    async def side(self, business_id: str, name: str) -> dict[str, Any] | None: ...


def slot_counts(appointments: list[dict[str, Any]], rules: BookingRules) -> dict[str, int]:
    """Slot name -> places held, for every slot a confirmed appointment (held now or given back) touches."""
    touched = {name: 0 for a in appointments if a.get("minutes") and len(a.get("at") or "") > 10
               for name in rules.slots(datetime.fromisoformat(a["at"]), int(a["minutes"]))}
    return touched | held_by(appointments, rules)


async def rebuild_slots(store: SlotStore, info: dict[str, Any] | None, business_id: str,
                        appointments: list[dict[str, Any]], verify: bool) -> list[str]:
    """Set the business's slot items from its appointments; with `verify`, the differences instead."""
    diffs = []
    for name, held in sorted(slot_counts(appointments, rules_of(info)).items()):
        if verify:
            live = int((await store.side(business_id, name) or {}).get("held", 0))
            if live != held:
                diffs.append(f"slot {business_id} {name}: holds {live}, the appointments hold {held}")
        else:
            await store.set_side(business_id, name, {"held": held})
    return diffs
