"""The conversation fold: sessions, messages and memory from events (invariants 1, 4 and 5)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from agentstream.events import Event, new_event, reply_event_id
from agentstream.projections.conversation import DUE_SHARDS, FoldConfig, active_session, apply, due_shard, empty_memory, fold

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
CONFIG = FoldConfig(idle_minutes=60, business_type="salon")


def msg(seq: int, minutes: float, text: str = "vreau programare", user: str = "u") -> Event:
    return new_event("MessageReceived", business_id="b", user_id=user, channel="whatsapp",
                     payload={"content": text, "externalId": f"wamid.{user}.{seq}"},
                     occurred_at=T0 + timedelta(minutes=minutes), event_id=f"e-{user}-{seq}").with_seq(seq)


def reply(seq: int, minutes: float, inbound: Event, session_id: str) -> Event:
    return new_event("ReplyGenerated", business_id="b", user_id=inbound.userId, channel="whatsapp",
                     event_id=reply_event_id(inbound.eventId), occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"content": "Sigur!", "inReplyTo": inbound.eventId, "sessionId": session_id, "model": "m"}).with_seq(seq)


def end(kind: str, seq: int, minutes: float, session_id: str) -> Event:
    return new_event(kind, business_id="b", user_id="u", channel="system", occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"sessionId": session_id}).with_seq(seq)


def test_first_message_opens_a_session_and_projects_seed_items() -> None:
    projection = apply(empty_memory("b", "u"), msg(1, 0, "Bună ziua, vreau o programare la tuns"), CONFIG)
    (session,) = projection.sessions
    (message,) = projection.messages
    assert session["status"] == "active" and session["businessId"] == "b" and session["userId"] == "u"
    assert session["metadata"]["businessType"] == "salon" and session["createdAt"] == "2026-11-24T08:00:00.000Z"
    assert message["type"] == "user" and message["sessionId"] == session["sessionId"]
    assert message["metadata"] == {"source": "webhook", "channel": "whatsapp", "externalId": "wamid.u.1"}
    ctx = projection.memory["sessionContext"]
    assert ctx["conversationLength"] == 1 and ctx["recentTopics"] == ["programare", "tuns"]
    assert ctx["lastMessage"]["content"].startswith("Bună ziua")


def test_reply_is_an_agent_message_in_the_same_session() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    sid = first.sessions[0]["sessionId"]
    second = apply(first.memory, reply(2, 0.1, msg(1, 0), sid), CONFIG)
    assert second.messages[0]["type"] == "agent" and second.messages[0]["metadata"]["responseId"] == "e-u-1"
    assert [t["role"] for t in second.memory["sessionContext"]["lastMessages"]] == ["user", "agent"]
    assert second.sessions[0]["sessionId"] == sid


def test_idle_timeout_abandons_and_opens_a_new_session() -> None:
    memory, sessions, _ = fold([msg(1, 0), msg(2, 60), msg(3, 121)], CONFIG, "b", "u")
    statuses = sorted(s["status"] for s in sessions.values())
    assert statuses == ["abandoned", "active"]
    assert memory["history"]["totalSessions"] == 2
    assert memory["sessionContext"]["conversationLength"] == 1


def test_expired_resolved_and_closed_end_the_active_session() -> None:
    for kind, status in (("SessionExpired", "abandoned"), ("SessionResolved", "resolved"), ("SessionClosed", "closed")):
        first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
        sid = first.sessions[0]["sessionId"]
        ended = apply(first.memory, end(kind, 2, 60, sid), CONFIG)
        assert ended.sessions[0]["status"] == status and active_session(ended.memory) is None
        again = apply(ended.memory, msg(3, 61), CONFIG)
        assert again.sessions[-1]["sessionId"] != sid


def test_a_stale_expiry_does_not_end_a_session_the_customer_kept_alive() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    sid = first.sessions[0]["sessionId"]
    later = apply(first.memory, msg(2, 50), CONFIG)
    expired = apply(later.memory, end("SessionExpired", 3, 60, sid), CONFIG)  # decided from the first message
    assert active_session(expired.memory)["sessionId"] == sid


def test_an_active_session_is_due_at_its_expiry_and_leaves_the_due_index_when_it_ends() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    (session,) = first.sessions
    assert session["nextDueAt"] == "2026-11-24T09:00:00.000Z" and session["dueShard"] == due_shard(session["sessionId"])
    assert 0 <= session["dueShard"] < DUE_SHARDS
    replied = apply(first.memory, reply(2, 10, msg(1, 0), session["sessionId"]), CONFIG)
    assert replied.sessions[0]["nextDueAt"] == "2026-11-24T09:10:00.000Z", "each turn moves the due time"
    longer = apply(empty_memory("b", "u"), msg(1, 0), FoldConfig(idle_minutes=15))
    assert longer.sessions[0]["nextDueAt"] == "2026-11-24T08:15:00.000Z", "the business's idle minutes"
    for kind in ("SessionExpired", "SessionResolved", "SessionClosed"):
        ended = apply(replied.memory, end(kind, 3, 71, session["sessionId"]), CONFIG).sessions[0]
        assert "nextDueAt" not in ended and "dueShard" not in ended, kind
    abandoned, opened = apply(replied.memory, msg(3, 200), CONFIG).sessions
    assert "nextDueAt" not in abandoned and opened["nextDueAt"] == "2026-11-24T12:20:00.000Z"


def test_duplicates_change_nothing() -> None:
    projection = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    again = apply(projection.memory, msg(1, 0), CONFIG)
    assert again.memory == projection.memory and again.sessions == [] and again.messages == []


def test_memory_stays_bounded_for_a_long_history() -> None:
    memory = empty_memory("b", "u")
    words = [f"subiect{i}" for i in range(500)]
    for seq in range(1, 20_001):
        text = " ".join(random.Random(seq).sample(words, 3)) + " " + "x" * (2000 if seq % 1000 == 0 else 10)
        memory = apply(memory, msg(seq, seq * 0.5, text), CONFIG).memory
    assert memory["history"]["totalMessages"] == 20_000
    assert len(memory["history"]["topicCounts"]) <= 50
    assert len(memory["sessionContext"]["lastMessages"]) == 4
    assert len(json.dumps(memory, ensure_ascii=False)) < 8_000


# ---- properties -------------------------------------------------------------------------


@st.composite
def conversation(draw: st.DrawFn) -> list[Event]:
    """A conversation log: messages with random gaps in time, replies, ends."""
    events: list[Event] = []
    minutes = 0.0
    session = ""
    for seq in range(1, draw(st.integers(1, 25)) + 1):
        minutes += draw(st.sampled_from([0.5, 5, 30, 59, 61, 200]))
        kind = draw(st.sampled_from(["msg", "msg", "reply", "resolve"]))
        if kind == "reply" and events:
            events.append(reply(seq, minutes, events[-1], session))
        elif kind == "resolve" and session:
            events.append(end("SessionResolved", seq, minutes, session))
        else:
            events.append(msg(seq, minutes, draw(st.sampled_from(["tuns", "vopsit azi", "pret manichiura", "hello"]))))
        session = fold(events, CONFIG, "b", "u")[0].get("sessionContext", {}).get("sessionId", "")
    return events


@settings(max_examples=60, deadline=None)
@given(conversation(), st.randoms(use_true_random=False), st.integers(0, 5))
def test_order_duplicates_and_gaps_do_not_change_the_result(events: list[Event], rnd: random.Random, dups: int) -> None:
    """Delivered shuffled and with duplicates, a consumer that applies in seq order (skipping
    seq <= lastSeq, filling gaps from the log) ends where the in-order fold ends."""
    expected = fold(events, CONFIG, "b", "u")
    delivered = events + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(delivered)
    log = {e.seq: e for e in events}
    memory, sessions, messages = empty_memory("b", "u"), {}, {}
    for event in delivered:
        if event.seq <= memory["lastSeq"]:
            continue
        for seq in range(memory["lastSeq"] + 1, event.seq + 1):  # gap fill from the log
            projection = apply(memory, log[seq], CONFIG)
            memory = projection.memory
            sessions.update((s["sessionId"], s) for s in projection.sessions)
            messages.update((m["messageId"], m) for m in projection.messages)
    assert (memory, sessions, messages) == expected


@settings(max_examples=40, deadline=None)
@given(conversation())
def test_one_active_session_and_deterministic_ids(events: list[Event]) -> None:
    first = fold(events, CONFIG, "b", "u")
    assert fold(events, CONFIG, "b", "u") == first
    assert sum(s["status"] == "active" for s in first[1].values()) <= 1
    assert all(m["sessionId"] in first[1] for m in first[2].values() if m["type"] == "user")
