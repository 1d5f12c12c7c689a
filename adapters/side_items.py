"""Side items: records an append writes in its own transaction, each with a condition (a booked
slot, a usage total under a ceiling). They live in the events table's idempotency namespace
(`idem#<businessId>#<name>`, seq 0), so the bridge, reconcile and the eventId index pass them by.
They carry no `eventStreamId`: `forget` does not erase them unless their values say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentstream.adapters.dynamo.client import to_item


@dataclass(frozen=True)
class Claim:
    """A side item an append creates, refused if it exists already (e.g. a booked slot)."""

    name: str  # its key in the business's idempotency namespace: give it a prefix of its own ("slot:")
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AddTo:
    """A side number an append adds `amount` to (from 0), refused if the total would pass
    `at_most` (e.g. a monthly usage total under a ceiling)."""

    name: str
    attribute: str
    amount: int
    at_most: int | None = None
    table: str | None = None  # an item of a table of its own (e.g. usage), at `key`; else the events table's namespace
    key: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError(f"AddTo {self.name}: amount {self.amount} is negative")

    @property
    def room(self) -> int | None:
        """The highest total the item may hold before the add, None: no ceiling."""
        return None if self.at_most is None else self.at_most - self.amount

    def fits(self, current: int | None) -> bool:
        """Whether adding to `current` (None: no total yet) stays within the ceiling."""
        room = self.room
        return room is None or (current <= room if current is not None else room >= 0)


@dataclass(frozen=True)
class TakeFrom:
    """A side number an append takes `amount` from, refused if it holds less (e.g. a booked
    slot's count when its appointment is cancelled)."""

    name: str
    attribute: str
    amount: int

    def fits(self, current: int | None) -> bool:
        return current is not None and current >= self.amount


SideItem = Claim | AddTo | TakeFrom


def located(item: SideItem, table: str, key: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where a side item lives: its own table and key if it names them, else (`table`, `key`)."""
    if isinstance(item, AddTo) and item.table is not None and item.key is not None:
        return item.table, item.key
    return table, key


class SideRefused(RuntimeError):
    """A side item's condition failed, so nothing of the append went in."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"refused: {', '.join(names)}")
        self.names = tuple(names)


def refused(side: tuple[SideItem, ...], reasons: list[str | None], external_id: str | None) -> list[str]:
    """The side items a cancelled append's reasons say failed: they follow the log's put and the
    external id's record in the transaction."""
    start = 2 if external_id is not None else 1
    return [item.name for item, reason in zip(side, reasons[start:]) if reason == "ConditionalCheckFailed"]


def transact_item(table: str, key: dict[str, Any], item: SideItem) -> dict[str, Any]:
    """The DynamoDB transaction item of a side item at `key` (a plain key map) of `table`."""
    if isinstance(item, Claim):
        return {"Put": {"TableName": table, "Item": to_item({**key, **item.values}), "ConditionExpression": "attribute_not_exists(streamId)"}}
    update: dict[str, Any] = {"TableName": table, "Key": to_item(key), "UpdateExpression": "ADD #a :n",
                              "ExpressionAttributeNames": {"#a": item.attribute}}
    if isinstance(item, TakeFrom):
        update["ConditionExpression"] = "#a >= :t"
        update["ExpressionAttributeValues"] = to_item({":n": -item.amount, ":t": item.amount})
        return {"Update": update}
    values: dict[str, Any] = {":n": item.amount}
    if item.room is not None:
        values[":room"] = item.room
        update["ConditionExpression"] = "attribute_not_exists(#a) OR #a <= :room" if item.room >= 0 else "#a <= :room"
    update["ExpressionAttributeValues"] = to_item(values)
    return {"Update": update}
