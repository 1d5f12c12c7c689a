"""Per-business analytics folded from events: pure, no I/O, event time only.

`BusinessStats.apply` counts each event once whatever Kafka redelivers, in any order: per
stream it remembers the seq up to which every event was counted plus the few seqs counted
early (after a gap), so a duplicate is told from a late event. Reply latency pairs a reply
with its inbound whichever arrives first. Every structure has a bound (`Limits`), so memory
stays flat however long the history is; below those bounds the figures do not depend on
delivery order or duplicates.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from agentstream.events import Event, MessageReceived, ReplyGenerated, iso
from agentstream.projections.kinds import is_reaction
from agentstream.projections.topics import extract_topics

ENDINGS = {"SessionExpired": "abandoned", "SessionResolved": "resolved", "SessionClosed": "closed"}


@dataclass(frozen=True)
class Limits:
    """How much each figure may remember, per business."""

    hours: int = 48                 # hour buckets of messages per hour
    pending_inbounds: int = 10_000  # inbound times waiting for their reply
    early_replies: int = 1_000      # reply times that came before their inbound
    latencies: int = 5_000          # latency window (the latest replies by event time)
    sessions: int = 10_000          # session ids remembered to count openings once
    streams: int = 10_000           # streams whose seen seqs are remembered
    ahead: int = 256                # seqs counted past a gap, per stream
    topics: int = 1_000             # topic counts kept (the least frequent are dropped)
    top_topics: int = 10


class SeenSeqs:
    """The seqs of one stream already counted: all up to `upto`, plus `ahead`."""

    def __init__(self, ahead_limit: int) -> None:
        self.upto = 0
        self.ahead: set[int] = set()
        self._limit = ahead_limit

    def add(self, seq: int) -> bool:
        """True the first time a seq is seen; False for a duplicate (or seq 0: not in the log)."""
        if seq <= self.upto or seq in self.ahead:
            return False
        self.ahead.add(seq)
        self._advance()
        while len(self.ahead) > self._limit:  # a gap that never fills: give it up
            self.upto = min(self.ahead) - 1
            self._advance()
        return True

    def _advance(self) -> None:
        """Move `upto` over the seqs ahead that now follow it (`ahead` only holds seqs past it)."""
        while self.upto + 1 in self.ahead:
            self.upto += 1
            self.ahead.discard(self.upto)


def _put(bounded: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Insert, dropping the oldest entry when over the limit."""
    bounded[key] = value
    bounded.move_to_end(key)
    if len(bounded) > limit:
        bounded.popitem(last=False)


def _hour(ts: datetime) -> int:
    return int(ts.timestamp() // 3600)


def percentile(ordered: list[int], p: float) -> int | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class BusinessStats:
    """The running figures of one business; `apply` events, read `snapshot()`."""

    def __init__(self, business_id: str, limits: Limits | None = None) -> None:
        self.business_id = business_id
        self.limits = limits or Limits()
        self.events = self.messages = self.replies = self.fallbacks = 0
        self.sessions: Counter[str] = Counter()
        self.latest: datetime | None = None
        self._hours: dict[int, int] = {}
        self._newest_hour: int | None = None
        self._seen: OrderedDict[str, SeenSeqs] = OrderedDict()
        self._inbound_at: OrderedDict[str, datetime] = OrderedDict()
        self._reply_at: OrderedDict[str, tuple[datetime, str]] = OrderedDict()
        self._latencies: list[tuple[datetime, str, int]] = []  # a heap: the oldest reply first
        self._session_ids: OrderedDict[str, None] = OrderedDict()
        self._topics: Counter[str] = Counter()

    def apply(self, event: Event) -> bool:
        """Count an event; False (no figure changes) when it was already counted."""
        if not self._first_time(event):
            return False
        self.events += 1
        self.latest = max(self.latest or event.occurredAt, event.occurredAt)
        if isinstance(event, MessageReceived) and not is_reaction(event):  # a reaction is no message to count
            self._on_message(event)
        elif isinstance(event, ReplyGenerated):
            self._on_reply(event)
        elif event.type in ENDINGS:
            self.sessions[ENDINGS[event.type]] += 1
        return True

    def _first_time(self, event: Event) -> bool:
        seen = self._seen.get(event.streamId) or SeenSeqs(self.limits.ahead)
        _put(self._seen, event.streamId, seen, self.limits.streams)
        return seen.add(event.seq)

    def _on_message(self, event: MessageReceived) -> None:
        self.messages += 1
        self._count_hour(_hour(event.occurredAt))
        self._topics.update(extract_topics(event.payload.content))
        if len(self._topics) > 2 * self.limits.topics:
            kept = sorted(self._topics.items(), key=lambda kv: (-kv[1], kv[0]))[: self.limits.topics]
            self._topics = Counter(dict(kept))
        early = self._reply_at.pop(event.eventId, None)
        if early is not None:
            self._add_latency(event.occurredAt, *early)
        else:
            _put(self._inbound_at, event.eventId, event.occurredAt, self.limits.pending_inbounds)

    def _count_hour(self, hour: int) -> None:
        if self._newest_hour is None or hour > self._newest_hour:
            self._newest_hour = hour
            self._hours = {h: n for h, n in self._hours.items() if h > hour - self.limits.hours}
        if hour > self._newest_hour - self.limits.hours:  # else older than the window
            self._hours[hour] = self._hours.get(hour, 0) + 1

    def _on_reply(self, event: ReplyGenerated) -> None:
        self.replies += 1
        self.fallbacks += int(event.payload.fallback)
        if event.payload.sessionId not in self._session_ids:
            self.sessions["opened"] += 1
            _put(self._session_ids, event.payload.sessionId, None, self.limits.sessions)
        inbound_at = self._inbound_at.pop(event.payload.inReplyTo, None)
        if inbound_at is not None:
            self._add_latency(inbound_at, event.occurredAt, event.eventId)
        else:
            _put(self._reply_at, event.payload.inReplyTo, (event.occurredAt, event.eventId), self.limits.early_replies)

    def _add_latency(self, inbound_at: datetime, reply_at: datetime, reply_id: str) -> None:
        ms = max(0, round((reply_at - inbound_at).total_seconds() * 1000))
        heapq.heappush(self._latencies, (reply_at, reply_id, ms))
        if len(self._latencies) > self.limits.latencies:
            heapq.heappop(self._latencies)

    def snapshot(self) -> dict[str, Any]:
        """The figures as JSON-ready data; the same events give the same snapshot."""
        latencies = sorted(ms for _, _, ms in self._latencies)
        top = sorted(self._topics.items(), key=lambda kv: (-kv[1], kv[0]))[: self.limits.top_topics]
        return {
            "businessId": self.business_id,
            "asOf": iso(self.latest) if self.latest else None,
            "events": self.events,
            "messages": self.messages,
            "messagesPerHour": self._hour_series(),
            "replyLatencyMs": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                               "samples": len(latencies)},
            "sessions": {k: self.sessions[k] for k in ("opened", "abandoned", "resolved", "closed")},
            "topTopics": [{"topic": t, "count": c} for t, c in top],
            "replies": self.replies,
            "fallbackReplies": self.fallbacks,
            "fallbackRate": round(self.fallbacks / self.replies, 4) if self.replies else None,
        }

    def _hour_series(self) -> list[dict[str, Any]]:
        """Every hour from the oldest kept bucket to the newest, oldest first (zeros included)."""
        if not self._hours:
            return []
        first, last = min(self._hours), max(self._hours)
        return [{"hour": _hour_label(h), "messages": self._hours.get(h, 0)} for h in range(first, last + 1)]


def _ts(at: datetime) -> str:
    return at.isoformat()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def state_of(stats: BusinessStats) -> dict[str, Any]:
    """Everything `stats` remembers as plain JSON data (in each structure's own order)."""
    return {
        "businessId": stats.business_id, "limits": asdict(stats.limits),
        "counts": [stats.events, stats.messages, stats.replies, stats.fallbacks],
        "sessions": dict(stats.sessions), "latest": _ts(stats.latest) if stats.latest else None,
        "hours": [[h, n] for h, n in stats._hours.items()], "newestHour": stats._newest_hour,
        "seen": [[s, seen.upto, sorted(seen.ahead)] for s, seen in stats._seen.items()],
        "inboundAt": [[e, _ts(at)] for e, at in stats._inbound_at.items()],
        "replyAt": [[e, _ts(at), r] for e, (at, r) in stats._reply_at.items()],
        "latencies": [[_ts(at), r, ms] for at, r, ms in stats._latencies],
        "sessionIds": list(stats._session_ids), "topics": dict(stats._topics),
    }


def stats_from(state: dict[str, Any]) -> BusinessStats:
    """The `BusinessStats` that `state_of` described; KeyError/TypeError/ValueError on other data."""
    stats = BusinessStats(str(state["businessId"]), Limits(**state["limits"]))
    stats.events, stats.messages, stats.replies, stats.fallbacks = (int(n) for n in state["counts"])
    stats.sessions = Counter({str(k): int(v) for k, v in state["sessions"].items()})
    stats.latest = _at(state["latest"]) if state["latest"] else None
    stats._hours = {int(h): int(n) for h, n in state["hours"]}
    stats._newest_hour = None if state["newestHour"] is None else int(state["newestHour"])
    for stream, upto, ahead in state["seen"]:
        seen = stats._seen[str(stream)] = SeenSeqs(stats.limits.ahead)
        seen.upto, seen.ahead = int(upto), {int(s) for s in ahead}
    stats._inbound_at = OrderedDict((str(e), _at(at)) for e, at in state["inboundAt"])
    stats._reply_at = OrderedDict((str(e), (_at(at), str(r))) for e, at, r in state["replyAt"])
    stats._latencies = [(_at(at), str(r), int(ms)) for at, r, ms in state["latencies"]]
    heapq.heapify(stats._latencies)
    stats._session_ids = OrderedDict((str(s), None) for s in state["sessionIds"])
    stats._topics = Counter({str(k): int(v) for k, v in state["topics"].items()})
    return stats


def _hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
