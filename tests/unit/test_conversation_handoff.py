"""The conversation fold with a handoff: who answers an inbound is decided by the log."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import example, given, settings, strategies as st

from agentstream.events import Event, new_event
from agentstream.projections.conversation import FoldConfig, active_session, apply, empty_memory, fold, handed_off
from agentstream.projections.handoff import status_of

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
CONFIG = FoldConfig(idle_minutes=600, handoff_timeout_minutes=120)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(seq: int, minutes: float, text: str = "aveți loc mâine?") -> Event:
    return new_event("MessageReceived", business_id="b", user_id="u", channel="whatsapp", occurred_at=at(minutes),
                     payload={"content": text, "replyTo": {"phone": "+40700000001"}}, event_id=f"m{seq}").with_seq(seq)


def system(kind: str, seq: int, minutes: float, **payload: str) -> Event:
    return new_event(kind, business_id="b", user_id="u", channel="system", occurred_at=at(minutes),
                     payload=payload, event_id=f"{kind}{seq}").with_seq(seq)


def owner(seq: int, minutes: float, sid: str, text: str = "Bună, sunt Ana") -> Event:
    return new_event("OwnerReplied", business_id="b", user_id="u", channel="whatsapp", occurred_at=at(minutes),
                     payload={"sessionId": sid, "content": text, "author": "Ana", "deliverTo": {"phone": "+40700000001"}},
                     event_id=f"o{seq}").with_seq(seq)


def sid_of(memory: dict) -> str:
    return active_session(memory)["sessionId"]


def test_owner_handoff_then_owner_reply_then_release() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    sid = sid_of(first.memory)
    assert first.memory["sessionContext"]["lastInbound"]["replyTo"] == {"phone": "+40700000001"}
    handoff = apply(first.memory, system("HandoffRequested", 2, 1, sessionId=sid, by="owner", reason="VIP"), CONFIG)
    (session,) = handoff.sessions
    assert session["handoff"]["by"] == "owner" and session["handoff"]["seq"] == 2
    assert status_of(session, at(2), 120) == "waiting"
    inbound = apply(handoff.memory, msg(3, 5), CONFIG)
    assert handed_off(inbound.memory, msg(3, 5), CONFIG)
    person = apply(inbound.memory, owner(4, 6, sid), CONFIG)
    (message,) = person.messages
    assert message["type"] == "agent" and message["metadata"]["author"] == "human"
    assert message["metadata"]["authorName"] == "Ana" and message["sessionId"] == sid
    assert status_of(person.sessions[0], at(7), 120) == "human"
    released = apply(person.memory, system("HandoffReleased", 5, 8, sessionId=sid, by="owner"), CONFIG)
    assert "handoff" not in released.sessions[0] and status_of(released.sessions[0], at(9), 120) == "ai"
    assert not handed_off(apply(released.memory, msg(6, 9), CONFIG).memory, msg(6, 9), CONFIG)


def test_reply_messages_are_authored_by_the_ai() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), CONFIG)
    reply = new_event("ReplyGenerated", business_id="b", user_id="u", channel="whatsapp", occurred_at=at(0.1),
                      payload={"content": "Da", "inReplyTo": "m1", "sessionId": sid_of(first.memory), "model": "m"})
    assert apply(first.memory, reply.with_seq(2), CONFIG).messages[0]["metadata"]["author"] == "ai"


def test_resolve_and_expiry_hand_the_conversation_back() -> None:
    for end in ("SessionResolved", "SessionExpired"):
        memory = apply(empty_memory("b", "u"), msg(1, 0), CONFIG).memory
        sid = sid_of(memory)
        memory = apply(memory, system("HandoffRequested", 2, 1, sessionId=sid, by="owner"), CONFIG).memory
        ended = apply(memory, system(end, 3, 700, sessionId=sid), CONFIG)
        assert status_of(ended.sessions[0], at(701), 120) == "resolved" and "handoff" not in ended.sessions[0]
        nxt = apply(ended.memory, msg(4, 702), CONFIG)
        assert not handed_off(nxt.memory, msg(4, 702), CONFIG)


def test_a_handoff_lapses_after_the_timeout_since_the_persons_last_message() -> None:
    memory = apply(empty_memory("b", "u"), msg(1, 0), CONFIG).memory
    sid = sid_of(memory)
    memory = apply(memory, system("HandoffRequested", 2, 0, sessionId=sid, by="customer"), CONFIG).memory
    memory = apply(memory, owner(3, 100, sid), CONFIG).memory
    inside = apply(memory, msg(4, 219), CONFIG).memory
    assert handed_off(inside, msg(4, 219), CONFIG)
    later = apply(inside, msg(5, 221), CONFIG).memory
    assert not handed_off(later, msg(5, 221), CONFIG) and "handoff" not in later["sessionContext"]


def test_a_handoff_for_an_ended_session_or_a_second_request_changes_nothing() -> None:
    memory = apply(empty_memory("b", "u"), msg(1, 0), CONFIG).memory
    sid = sid_of(memory)
    assert apply(memory, system("HandoffRequested", 2, 1, sessionId="other", by="owner"), CONFIG).sessions == []
    memory = apply(memory, system("HandoffRequested", 2, 1, sessionId=sid, by="customer"), CONFIG).memory
    again = apply(memory, system("HandoffRequested", 3, 2, sessionId=sid, by="owner"), CONFIG)
    assert again.sessions == [] and again.memory["sessionContext"]["handoff"]["by"] == "customer"


# ---- property: an inbound gets a reply iff the conversation is not handed off at its seq -------

ACTIONS = st.lists(st.tuples(st.sampled_from(["in", "in", "handoff", "release", "owner", "resolve"]),
                             st.integers(1, 150)), min_size=1, max_size=25)


def _log(actions: list[tuple[str, int]]) -> list[Event]:
    """A log as the product writes it: the worker's replies after the inbounds it answers."""
    events: list[Event] = []
    memory, minutes = empty_memory("b", "u"), 0
    for kind, step in actions:
        minutes += step
        seq = len(events) + 1
        ctx = active_session(memory)
        sid = ctx["sessionId"] if ctx else "none"
        event = {"in": lambda: msg(seq, minutes),
                 "handoff": lambda: system("HandoffRequested", seq, minutes, sessionId=sid, by="owner"),
                 "release": lambda: system("HandoffReleased", seq, minutes, sessionId=sid, by="owner"),
                 "owner": lambda: owner(seq, minutes, sid),
                 "resolve": lambda: system("SessionResolved", seq, minutes, sessionId=sid)}[kind]()
        events.append(event)
        memory = apply(memory, event, CONFIG).memory
        if kind == "in" and not handed_off(memory, event, CONFIG):
            answer = new_event("ReplyGenerated", business_id="b", user_id="u", channel="whatsapp",
                               occurred_at=at(minutes), event_id=f"r{seq}",
                               payload={"content": "ok", "inReplyTo": event.eventId, "sessionId": sid_of(memory),
                                        "model": "m"}).with_seq(seq + 1)
            events.append(answer)
            memory = apply(memory, answer, CONFIG).memory
    return events


def _expected_handed_off(events: list[Event], inbound: Event) -> bool:
    """The rule read straight off the log: a HandoffRequested earlier in the inbound's session,
    not released or resolved since, whose person wrote within the timeout; the session itself
    ends when the inbound comes more than the idle time after its last message."""
    since: datetime | None = None
    last_message: datetime | None = None
    idle = timedelta(minutes=CONFIG.idle_minutes)
    for e in events:
        if e.type == "MessageReceived" and last_message is not None and e.occurredAt - last_message > idle:
            since = last_message = None  # the session went idle: this inbound opens a new one
        if e.seq >= inbound.seq:
            break
        if since is not None and e.occurredAt - since > timedelta(minutes=120):
            since = None  # lapsed: the person was silent too long
        if e.type == "HandoffRequested" and since is None and e.payload.sessionId != "none":
            since = e.occurredAt
        elif e.type in ("HandoffReleased", "SessionResolved") and e.payload.sessionId != "none":
            since = None
        elif e.type == "OwnerReplied" and since is not None:
            since = e.occurredAt
        if e.type == "SessionResolved" and e.payload.sessionId != "none":
            last_message = None
        elif e.type == "MessageReceived" or (e.type in ("ReplyGenerated", "OwnerReplied") and last_message):
            last_message = e.occurredAt
    return since is not None and inbound.occurredAt - since <= timedelta(minutes=120)


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
@example([("in", 1), ("handoff", 31), ("handoff", 150), ("handoff", 150), ("handoff", 150), ("in", 120)])
@example([("in", 1), ("handoff", 32), ("handoff", 150), ("handoff", 150), ("handoff", 150), ("in", 119), ("in", 1)])
def test_an_inbound_gets_a_reply_iff_not_handed_off_at_its_seq(actions: list[tuple[str, int]]) -> None:
    events = _log(actions)
    answered = {e.payload.inReplyTo for e in events if e.type == "ReplyGenerated"}
    for inbound in (e for e in events if e.type == "MessageReceived"):
        assert (inbound.eventId not in answered) == _expected_handed_off(events, inbound)
    memory, sessions, messages = fold(events, CONFIG, "b", "u")  # a replay folds to the same answer
    replies = [m for m in messages.values() if m["metadata"].get("author") == "ai"]
    assert len(replies) == len(answered)
