"""Per partition, the offsets a consumer took and which of them are done: what it may commit.

Records finish out of order (conversations run concurrently), so a partition's position is the
first offset not done yet: every record before it is done. Each taken offset may carry a marker
(the worker's: the record's key and headers), and the marker of the last record behind the position
is kept, so a saved position can later be checked against the topic (positions.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition


class Offsets:
    """Per partition, the offsets taken and which are done; commits go up to the first not done."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, OrderedDict[int, tuple[bool, Any]]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._marker: dict[TopicPartition, Any] = {}
        self._committed: dict[TopicPartition, int] = {}

    def take(self, tp: TopicPartition, offset: int, marker: Any = None) -> None:
        self._open.setdefault(tp, OrderedDict())[offset] = (False, marker)

    def done(self, tp: TopicPartition, offset: int) -> None:
        taken = self._open.get(tp)
        if taken is not None and offset in taken:
            taken[offset] = (True, taken[offset][1])

    def advanced(self) -> dict[TopicPartition, int]:
        """The partitions whose first unhandled offset moved since the last `committed`."""
        for tp, taken in self._open.items():
            while taken and next(iter(taken.values()))[0]:
                offset, (_, marker) = taken.popitem(last=False)
                self._next[tp] = offset + 1
                self._marker[tp] = marker
        return {tp: n for tp, n in self._next.items() if self._committed.get(tp) != n}

    def marker(self, tp: TopicPartition) -> Any:
        """The marker of the record just before the partition's position (None if it had none)."""
        return self._marker.get(tp)

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        self._committed.update(positions)

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._marker.pop(tp, None)
            self._committed.pop(tp, None)


class InOrderAcks:
    """Per partition, the records taken, released for acking in offset order: a record once it
    and every record before it are done. Faust commits up to the first gap in its acked offsets,
    but takes a gap of one record right after its committed offset for none, so a held record (a
    burst's first, acked only once its reply is in the log) must never be passed by a later ack."""

    def __init__(self) -> None:
        self._taken: dict[TopicPartition, OrderedDict[int, list[Any]]] = {}

    def take(self, tp: TopicPartition, offset: int, record: Any) -> None:
        self._taken.setdefault(tp, OrderedDict())[offset] = [False, record]

    def done(self, tp: TopicPartition, offset: int) -> list[Any]:
        """Mark a record done; the records this releases, in offset order (none while an earlier
        one is not done, or if its partition was revoked since it was taken)."""
        taken = self._taken.get(tp)
        if taken is None or offset not in taken:
            return []
        taken[offset][0] = True
        released = []
        while taken and next(iter(taken.values()))[0]:
            released.append(taken.popitem(last=False)[1][1])
        return released

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked partitions: their records are read again from the committed offsets."""
        for tp in partitions:
            self._taken.pop(tp, None)
