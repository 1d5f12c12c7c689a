"""What the worker has read of each conversation's log: gap filling and skipped events.

An event whose predecessors this worker has not applied (a gap, a restart, a redelivery) is
applied after them, read from the log without the events a skip record names. What the last
read saw also tells the worker which inbounds are known to have no reply yet (`unanswered`).
"""

from __future__ import annotations

import structlog

from agentstream.adapters.dynamo.event_store import event_from_item
from agentstream.events import Event
from agentstream.projections.skips import SKIP_TYPES, skipped_seqs, without_skipped
from agentstream.streams.ports import EventLog

log = structlog.get_logger(__name__)


class GapFiller:
    """Per stream: the skipped seqs past the last gap filled, whether a stream cached from a
    duplicate's load has had its log read for skips, and the head its last log read saw."""

    def __init__(self, store: EventLog) -> None:
        self._store = store
        self._skips_ahead: dict[str, frozenset[int]] = {}  # per stream: skipped seqs past the last gap filled
        self._unchecked: set[str] = set()  # cached from a duplicate's load, the log not yet read for skips
        self._log_read: dict[str, int] = {}  # per cached stream: the head its last log read saw (this epoch)
        self._epoch = 0  # bumped when partitions are revoked: a read begun before then is not kept

    def revoked(self) -> None:
        """Another worker may answer this one's conversations from now on."""
        self._epoch += 1
        self._log_read.clear()

    def unchecked(self, stream: str) -> None:
        """The stream is cached from a duplicate's load: its log is not yet read for skips."""
        self._unchecked.add(stream)

    def must_read(self, event: Event, low: int, cached: bool) -> bool:
        """Whether `event` is to be applied after reading the log (`fill`): there is a gap
        before it, or this worker has not read its stream's log yet."""
        return event.seq > low + 1 or not cached or event.streamId in self._unchecked

    def skipped(self, event: Event) -> bool:
        """A redelivered event skipped since: the log read when its stream was loaded said so."""
        return event.seq in self._skips_ahead.get(event.streamId, ())

    def unanswered(self, event: Event) -> bool:
        """Whether `event` is known to have no reply in the log without reading it: the stream's
        last read of the log (in this epoch) ended at or before it. Past that read only the
        conversation's worker appends replies, and this process is that worker until its
        partitions are revoked (a failed try forgets the read: it may have appended one)."""
        return event.seq >= self._log_read.get(event.streamId, event.seq + 1)

    def forget_read(self, stream: str) -> None:
        """A try failed, maybe after answering: the next one reads the log."""
        self._log_read.pop(stream, None)

    def evicted(self, stream: str) -> None:
        """The stream's state left the cache."""
        self._unchecked.discard(stream)
        self._log_read.pop(stream, None)

    def forget(self, stream: str) -> None:
        """The stream's state is to come from the tables again: nothing read of it is kept."""
        self._log_read.pop(stream, None)
        self._unchecked.discard(stream)
        self._skips_ahead.pop(stream, None)

    async def fill(self, event: Event, low: int, upto: int = 0) -> list[Event]:
        """The events after `low` up to `event` (or up to seq `upto`, if further), without those
        the log says are skipped. A skip record comes after the event it names, so the log is
        read past that point too (only the skip records there are parsed): events that arrive
        between a poison event and its `EventSkipped` never meet it again, nor does a poison
        event redelivered after a restart (a stream not in the cache is read once; the skipped
        seqs found past it are kept)."""
        upto, epoch = max(upto, event.seq), self._epoch
        items = await self._store.read_items(event.streamId, after_seq=low)
        if epoch == self._epoch:  # not revoked meanwhile
            self._log_read[event.streamId] = max([event.seq, *(int(i["seq"]) for i in items)])
        seen = [event_from_item(i) for i in items if int(i["seq"]) != event.seq
                and (int(i["seq"]) <= upto or i.get("type") in SKIP_TYPES)]
        logged = sorted([*seen, event], key=lambda e: e.seq)
        pending = [e for e in without_skipped(logged) if e.seq <= upto]
        ahead = frozenset(seq for seq in skipped_seqs(logged) if seq > upto)
        self._skips_ahead.pop(event.streamId, None)
        self._unchecked.discard(event.streamId)
        if ahead:  # kept (only where there are any) for redeliveries of those events
            self._skips_ahead[event.streamId] = ahead
        if event.seq > low + 1 or pending != [event]:
            log.info("worker.gap_filled", streamId=event.streamId, after=low, upto=upto, applied=len(pending),
                     skipped=sum(1 for e in logged if e.seq <= upto) - len(pending))
        return pending
