"""The burst decision, pure: when a conversation's unanswered messages get their one reply, and
which inbounds a reply covers (decided from the log, never a clock, for replay and explain).

A customer often writes in pieces ("Buna" / "as vrea o programare" / "joi la 10?"). The worker
answers when the conversation has been quiet for `replyAfterQuietMs`, or when the oldest
unanswered message is `replyWithinMs` old, whichever comes first. A reply covers every
unanswered inbound from its first (`inReplyTo`, whose id it takes) up to `coversUpToSeq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentstream.events import Event, MessageReceived, ReplyGenerated

QUIET_CHANNELS = frozenset({"websocket", "whatsapp", "messenger", "instagram", "sms", "telegram"})
DEFAULT_QUIET_MS = 2_500  # on the chat channels, where customers write in pieces
DEFAULT_WITHIN_MS = 8_000


@dataclass(frozen=True)
class BurstWindow:
    """How long a reply waits: for quiet, and at most since the oldest unanswered message."""

    quiet_ms: int
    within_ms: int

    @property
    def waits(self) -> bool:
        return self.quiet_ms > 0


def window_of(info: dict[str, Any] | None, channel: str, default_quiet_ms: int | None = None) -> BurstWindow:
    """The business's window for a channel (business-info settings.replyAfterQuietMs and
    replyWithinMs); else `default_quiet_ms` (the process's, when set); else 2 500 ms on the chat
    channels and 0 (a reply per message) on Gmail and REST."""
    settings = (info or {}).get("settings") or {}
    quiet = _ms(settings.get("replyAfterQuietMs"))
    if quiet is None:
        quiet = default_quiet_ms if default_quiet_ms is not None else (DEFAULT_QUIET_MS if channel in QUIET_CHANNELS else 0)
    within = _ms(settings.get("replyWithinMs"))
    return BurstWindow(quiet, max(quiet, DEFAULT_WITHIN_MS if within is None else within))


def _ms(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def wait_s(window: BurstWindow, first_at: float, last_at: float, now: float) -> float:
    """Seconds still to wait before answering a burst whose first message arrived at `first_at`
    and last at `last_at` (monotonic seconds); 0: answer now."""
    due = min(last_at + window.quiet_ms / 1000, first_at + window.within_ms / 1000)
    return max(0.0, due - now)


def ask_again(window: BurstWindow, first_at: float, now: float) -> bool:
    """A message arrived while the model was drafting: drop the draft and ask again with the
    whole burst while the oldest message is younger than `replyWithinMs`; past it the draft goes."""
    return now - first_at < window.within_ms / 1000


def covers(reply: ReplyGenerated, inbound: Event, first_seq: int = 0) -> bool:
    """Whether `reply` (later in the log) covers `inbound`: it answers it, or its burst reaches it.
    A burst is contiguous: the answerable inbounds from its first (at `first_seq`; 0 when the
    first is before what was read) up to coversUpToSeq."""
    if reply.seq <= inbound.seq:
        return False
    return reply.payload.inReplyTo == inbound.eventId or first_seq <= inbound.seq <= reply.payload.coversUpToSeq


def first_seqs(events: Sequence[Event]) -> dict[str, int]:
    """Each reply's first covered inbound's seq, where `events` hold it."""
    seqs = {e.eventId: e.seq for e in events if isinstance(e, MessageReceived)}
    return {e.eventId: seqs.get(e.payload.inReplyTo, 0) for e in events if isinstance(e, ReplyGenerated)}


def uncovered(inbounds: Sequence[MessageReceived], later: Sequence[Event]) -> list[MessageReceived]:
    """Those of `inbounds` no reply among `later` (a read of the log holding them) covers, in log order."""
    replies = [e for e in later if isinstance(e, ReplyGenerated)]
    firsts = first_seqs([*inbounds, *later])
    return [m for m in inbounds if not any(covers(r, m, firsts[r.eventId]) for r in replies)]


def covered_by(reply: ReplyGenerated, events: Sequence[Event], answerable: Any) -> list[MessageReceived]:
    """The inbounds `reply` covers, from the log before it: its first (inReplyTo) and every
    answerable inbound after it up to coversUpToSeq. `answerable(event)`: whether an inbound
    gets a reply at all (a reaction does not)."""
    first = next((e for e in events if e.eventId == reply.payload.inReplyTo and isinstance(e, MessageReceived)), None)
    if first is None:
        return []
    upto = max(first.seq, reply.payload.coversUpToSeq)
    return [first, *(e for e in events if isinstance(e, MessageReceived) and first.seq < e.seq <= upto
                     and e.seq < reply.seq and answerable(e))]


def burst_text(inbounds: Sequence[MessageReceived]) -> str:
    """The customer's latest turn as the model sees it: the burst's messages, one a line."""
    return "\n".join(m.payload.content for m in inbounds if m.payload.content.strip()) or inbounds[-1].payload.content


def arrived(at: datetime, now_wall: datetime, now_monotonic: float) -> float:
    """An event time as a monotonic instant (clamped to now: a gateway's clock may run ahead)."""
    return now_monotonic - max(0.0, (now_wall - at).total_seconds())


def covered_twice(events: Sequence[Event]) -> list[str]:
    """The inbounds of a conversation's log that more than one reply covers (never: each is
    covered by exactly one reply, or by a handoff), said as `replay --verify` reports them."""
    replies = [e for e in events if isinstance(e, ReplyGenerated)]
    firsts = first_seqs(events)
    found = []
    for m in (e for e in events if isinstance(e, MessageReceived)):
        by = [r for r in replies if covers(r, m, firsts[r.eventId])]
        if len(by) > 1:
            found.append(f"{m.streamId} inbound {m.eventId} (seq {m.seq}) is covered by {len(by)} replies: "
                         + ", ".join(f"{r.eventId} (seq {r.seq})" for r in by))
    return found
