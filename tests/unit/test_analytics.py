"""The analytics fold: the figures, duplicates and delivery order, percentiles, bounded memory."""

from __future__ import annotations

import gc
import math
import random
import string
import tracemalloc
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from agentstream.events import Event, new_event, reply_event_id
from agentstream.projections.analytics import BusinessStats, Limits
from tests.sizes import size

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


def msg(user: str, seq: int, at: datetime, text: str = "vreau programare") -> Event:
    return new_event("MessageReceived", business_id="b", user_id=user, channel="whatsapp", occurred_at=at,
                     event_id=f"m-{user}-{seq}", payload={"content": text}).with_seq(seq)


def reply(inbound: Event, seq: int, at: datetime, session: str, fallback: bool = False) -> Event:
    return new_event("ReplyGenerated", business_id="b", user_id=inbound.userId, channel="whatsapp", occurred_at=at,
                     event_id=reply_event_id(inbound.eventId),
                     payload={"content": "Sigur!", "inReplyTo": inbound.eventId, "sessionId": session, "model": "m",
                              "fallback": fallback}).with_seq(seq)


def end(kind: str, user: str, seq: int, at: datetime, session: str) -> Event:
    return new_event(kind, business_id="b", user_id=user, channel="system", occurred_at=at,
                     event_id=f"{kind}-{user}-{seq}", payload={"sessionId": session}).with_seq(seq)


def fold(events: list[Event], limits: Limits | None = None) -> dict:
    stats = BusinessStats("b", limits)
    for event in events:
        stats.apply(event)
    return stats.snapshot()


def sample_log() -> list[Event]:
    a1 = msg("u1", 1, T0, "Vreau o programare la tuns")
    a2 = msg("u1", 3, T0 + timedelta(minutes=70), "Cât costă vopsitul?")
    b1 = msg("u2", 1, T0 + timedelta(minutes=30), "programare mâine pentru tuns")
    return [
        a1, reply(a1, 2, T0 + timedelta(seconds=2), "s-u1"),
        b1, reply(b1, 2, T0 + timedelta(minutes=30, seconds=1), "s-u2"),
        a2, reply(a2, 4, T0 + timedelta(minutes=70, seconds=5), "s-u1", fallback=True),
        end("SessionResolved", "u1", 5, T0 + timedelta(minutes=71), "s-u1"),
        end("SessionExpired", "u2", 3, T0 + timedelta(minutes=90), "s-u2"),
    ]


def test_figures_of_a_small_log() -> None:
    snap = fold(sample_log())
    assert snap["businessId"] == "b" and snap["events"] == 8 and snap["messages"] == 3
    assert snap["asOf"] == "2026-11-24T09:30:00.000Z"
    assert snap["messagesPerHour"] == [{"hour": "2026-11-24T08:00:00Z", "messages": 2},
                                       {"hour": "2026-11-24T09:00:00Z", "messages": 1}]
    assert snap["replyLatencyMs"] == {"p50": 2000, "p95": 5000, "samples": 3}
    assert snap["sessions"] == {"opened": 2, "abandoned": 1, "resolved": 1, "closed": 0}
    assert snap["topTopics"][:2] == [{"topic": "programare", "count": 2}, {"topic": "tuns", "count": 2}]
    assert {t["topic"] for t in snap["topTopics"][2:]} == {"costa", "vopsitul"}
    assert (snap["replies"], snap["fallbackReplies"], snap["fallbackRate"]) == (3, 1, 0.3333)


def test_a_reaction_is_no_message_in_the_figures() -> None:
    log = sample_log()
    reaction = new_event("MessageReceived", business_id="b", user_id="ana", channel="whatsapp", occurred_at=T0 + timedelta(hours=2),
                         payload={"content": "👍", "kind": "reaction", "reactsTo": log[1].eventId}).with_seq(99)
    with_reaction = fold([*log, reaction])
    assert with_reaction["messages"] == fold(log)["messages"] and with_reaction["events"] == fold(log)["events"] + 1
    assert with_reaction["messagesPerHour"] == fold(log)["messagesPerHour"]


def test_no_events_gives_empty_figures() -> None:
    snap = BusinessStats("nobody").snapshot()
    assert snap["events"] == 0 and snap["messagesPerHour"] == [] and snap["topTopics"] == []
    assert snap["replyLatencyMs"] == {"p50": None, "p95": None, "samples": 0} and snap["fallbackRate"] is None


def test_a_redelivered_event_counts_once_and_a_late_one_after_a_gap_counts() -> None:
    log = sample_log()
    stats = BusinessStats("b")
    assert [stats.apply(e) for e in log[:2]] == [True, True]
    assert stats.apply(log[0]) is False and stats.apply(log[1]) is False
    late, after_gap = log[4], log[6]  # u1's seq 3 arrives after seq 5
    assert stats.apply(after_gap) is True and stats.apply(late) is True and stats.apply(late) is False
    assert stats.snapshot()["messages"] == 2 and stats.snapshot()["sessions"]["resolved"] == 1


def test_messages_per_hour_keeps_the_last_48_hours_oldest_first() -> None:
    events = [msg("u", i + 1, T0 + timedelta(hours=h)) for i, h in enumerate((0, 20, 60))]
    snap = fold(events + [msg("v", 1, T0 + timedelta(hours=1))])  # late, older than the window
    series = snap["messagesPerHour"]
    assert len(series) == 41 and series[0] == {"hour": "2026-11-25T04:00:00Z", "messages": 1}
    assert series[-1] == {"hour": "2026-11-26T20:00:00Z", "messages": 1}
    assert sum(h["messages"] for h in series) == 2 and snap["messages"] == 4
    assert [h["hour"] for h in series] == sorted(h["hour"] for h in series)


@st.composite
def conversations(draw: st.DrawFn) -> list[Event]:
    """A log of a few customers: messages, replies (some fallback), session endings, over days."""
    events: list[Event] = []
    for u in range(draw(st.integers(1, 4))):
        user, at, seq, session, inbound = f"u{u}", T0, 0, 0, None
        for step in draw(st.lists(st.sampled_from(["msg", "reply", "fallback", "SessionExpired",
                                                   "SessionResolved", "SessionClosed"]), max_size=12)):
            at += timedelta(minutes=draw(st.integers(0, 900)), milliseconds=draw(st.integers(0, 9999)))
            seq += 1
            if step == "msg":
                inbound = msg(user, seq, at, draw(st.sampled_from(["vreau programare", "pret tuns", "menu vegan", "orar"])))
                events.append(inbound)
            elif step in ("reply", "fallback") and inbound is not None:
                events.append(reply(inbound, seq, at, f"{user}-s{session}", fallback=step == "fallback"))
                inbound = None
            elif step.startswith("Session"):
                events.append(end(step, user, seq, at, f"{user}-s{session}"))
                session += 1
            else:
                seq -= 1
    return events


@settings(max_examples=150, deadline=None)
@given(conversations(), st.randoms(use_true_random=False), st.lists(st.integers(0, 10_000), max_size=30))
def test_duplicates_and_any_delivery_order_give_the_same_figures(log: list[Event], rnd: random.Random, dupes: list[int]) -> None:
    delivered = log + [log[i % len(log)] for i in dupes if log]
    rnd.shuffle(delivered)
    assert fold(delivered) == fold(log)


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 600_000), min_size=1, max_size=120), st.randoms(use_true_random=False))
def test_percentiles_match_a_brute_force_sort_over_the_latest_replies(latencies: list[int], rnd: random.Random) -> None:
    window = 40
    events, replies = [], []
    for i, ms in enumerate(latencies):
        inbound = msg(f"u{i}", 1, T0 + timedelta(minutes=i))
        answer = reply(inbound, 2, inbound.occurredAt + timedelta(milliseconds=ms), f"s{i}")
        events += [inbound, answer]
        replies.append((answer.occurredAt, answer.eventId, ms))
    rnd.shuffle(events)
    latest = [ms for _, _, ms in sorted(replies)[-window:]]
    snap = fold(events, Limits(latencies=window))["replyLatencyMs"]
    assert snap == {"p50": nearest_rank(latest, 50), "p95": nearest_rank(latest, 95), "samples": len(latest)}


def _word(i: int) -> str:
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += string.ascii_lowercase[r]
        if i == 0:
            return "topic" + letters


def _feed(stats: BusinessStats, start: int, count: int) -> None:
    """Each customer new: a new stream, session and topic, one inbound never answered, one reply
    whose inbound never comes."""
    for i in range(start, start + count):
        at = T0 + timedelta(minutes=i)
        stats.apply(msg(f"u{i}", 1, at, f"{_word(i)} {_word(i + 1)}"))
        orphan = msg(f"gone{i}", 1, at)
        stats.apply(reply(orphan, 2, at + timedelta(seconds=1), f"s{i}"))


def test_memory_stays_flat_however_long_the_history() -> None:
    stats = BusinessStats("b", Limits(pending_inbounds=200, early_replies=200, latencies=200, sessions=200,
                                      streams=200, topics=200))
    warm_up, more = 3_000, size(2_000, 10_000)  # a customer a minute: the warm-up fills every bound (200; 48 hours)
    tracemalloc.start()
    try:
        _feed(stats, 0, warm_up)
        gc.collect()
        warm = tracemalloc.get_traced_memory()[0]
        _feed(stats, warm_up, more)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
    snap = stats.snapshot()
    total = warm_up + more
    assert snap["messages"] == total and snap["sessions"]["opened"] == total and snap["replies"] == total
    assert len(snap["topTopics"]) == 10 and len(snap["messagesPerHour"]) == 48
    assert grown < 20 * more, f"memory grew by {grown} bytes over {more} more customers"
