"""Message kinds and delivery statuses: which inbounds are answered, and how the fold records
reactions and what became of the messages we sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from agentstream.events import IMPORTED, MESSAGE_KINDS, Event, new_event, reply_event_id
from agentstream.projections.base import fold_events
from agentstream.projections.conversation import (
    CONVERSATION, MAX_STATUSES, FoldConfig, apply, empty_memory, fold, reply_status,
)
from agentstream.projections.kinds import needs_reply, no_reply_reason
from agentstream.projections import nudge
from agentstream.streams.replay import unwanted_replies

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
CONFIG = FoldConfig(idle_minutes=60, nudge_after_minutes=10)
ANSWERED = {"text": True, "button": True, "reaction": False, "location": False, "contact": False, "unsupported": False,
            "image": True, "audio": True, "document": True}


def inbound(seq: int, minutes: float, content: str = "Bună, aveți loc mâine?", kind: str = "text",
            reacts_to: str | None = None, **extra: object) -> Event:
    payload = {"content": content, "kind": kind, "reactsTo": reacts_to, **extra}
    return new_event("MessageReceived", business_id="b", user_id="u", channel="whatsapp", payload=payload,
                     occurred_at=T0 + timedelta(minutes=minutes), event_id=f"in-{seq}").with_seq(seq)


def answer(seq: int, minutes: float, to: Event, session_id: str, content: str = "Da, la ora 10.") -> Event:
    return new_event("ReplyGenerated", business_id="b", user_id="u", channel="whatsapp",
                     event_id=reply_event_id(to.eventId), occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"content": content, "inReplyTo": to.eventId, "sessionId": session_id, "model": "m"}).with_seq(seq)


def reported(seq: int, minutes: float, reply_id: str, status: str, error: str | None = None) -> Event:
    at = T0 + timedelta(minutes=minutes)
    return new_event("ReplyStatusReported", business_id="b", user_id="u", channel="whatsapp", occurred_at=at,
                     payload={"replyEventId": reply_id, "status": status, "at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                              "externalId": f"wamid.{seq}", "error": error}).with_seq(seq)


def failed(seq: int, minutes: float, reply_id: str) -> Event:
    return new_event("DeliveryFailed", business_id="b", user_id="u", channel="whatsapp",
                     occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"replyEventId": reply_id, "error": "no whatsapp credentials"}).with_seq(seq)


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_which_kinds_are_answered(kind: str) -> None:
    event = inbound(1, 0, "x", kind)
    assert needs_reply(event) is ANSWERED[kind]
    assert (no_reply_reason(event) is None) is ANSWERED[kind]


def test_imported_messages_and_events_that_are_not_messages_need_no_reply() -> None:
    assert not needs_reply(inbound(1, 0, replyTo={IMPORTED: "legacy"}))
    assert no_reply_reason(inbound(1, 0, replyTo={IMPORTED: "legacy"})) == "a message imported from history"
    first = inbound(1, 0)
    for event in (answer(2, 1, first, "s"), reported(3, 2, "r", "read"), failed(4, 3, "r")):
        assert not needs_reply(event)
    assert no_reply_reason(inbound(1, 0, "", "reaction")) == "a reaction"


def _conversation() -> tuple[Event, Event, str]:
    first = inbound(1, 0)
    sid = apply(empty_memory("b", "u"), first, CONFIG).sessions[0]["sessionId"]
    return first, answer(2, 1, first, sid), sid


def test_a_reaction_is_recorded_against_the_message_and_keeps_the_session_as_it_was() -> None:
    first, reply, sid = _conversation()
    before, _, _ = fold([first, reply], CONFIG, "b", "u")
    memory, sessions, messages = fold([first, reply, inbound(3, 30, "👍", "reaction", reply.eventId)], CONFIG, "b", "u")
    item = messages["in-3"]
    assert item["type"] == "user" and item["sessionId"] == sid and item["content"] == "👍 (reaction)"
    assert item["metadata"] == {"source": "webhook", "channel": "whatsapp", "kind": "reaction", "emoji": "👍",
                                 "reactsTo": reply.eventId, "reactsToText": "Da, la ora 10."}
    ctx, was = memory["sessionContext"], before["sessionContext"]
    for key in ("lastMessageAt", "lastInbound", "lastMessages", "conversationLength", "status"):
        assert ctx[key] == was[key], key  # not a turn: the window, the nudge and the expiry are as before
    assert memory["history"] == before["history"] and sessions[sid]["lastMessageAt"] == "2026-12-01T09:01:00.000Z"
    assert nudge.caps(ctx, CONFIG) == nudge.caps(was, CONFIG)


def test_a_removed_reaction_and_one_before_any_session_are_recorded_too() -> None:
    _, _, messages = fold([inbound(1, 0, "", "reaction", "somewhere")], CONFIG, "b", "u")
    assert messages["in-1"]["sessionId"] == "none" and messages["in-1"]["content"] == "(reaction removed)"
    assert "reactsToText" not in messages["in-1"]["metadata"]


def test_a_button_location_and_contact_are_turns_with_their_kind() -> None:
    events = [inbound(1, 0, "Yes, book it", "button", payloadId="BOOK_YES"),
              inbound(2, 1, "Location: 44.43, 26.10 — Str. X", "location"),
              inbound(3, 2, "Contact: Ana Pop +40700000000", "contact")]
    memory, _, messages = fold(events, CONFIG, "b", "u")
    assert messages["in-1"]["content"] == "Yes, book it"
    assert messages["in-1"]["metadata"]["kind"] == "button" and messages["in-1"]["metadata"]["payloadId"] == "BOOK_YES"
    assert [messages[f"in-{i}"]["metadata"]["kind"] for i in (2, 3)] == ["location", "contact"]
    assert [t["content"][:8] for t in memory["sessionContext"]["lastMessages"]] == ["Yes, boo", "Location", "Contact:"]
    assert memory["sessionContext"]["lastInbound"]["eventId"] == "in-3"
    assert "kind" not in fold([inbound(1, 0)], CONFIG, "b", "u")[2]["in-1"]["metadata"]  # text: as before


def test_statuses_keep_the_furthest_per_message_and_move_only_the_position() -> None:
    first, reply, _ = _conversation()
    base, sessions0, messages0 = fold([first, reply], CONFIG, "b", "u")
    events = [first, reply, reported(3, 2, reply.eventId, "read"), reported(4, 3, reply.eventId, "delivered")]
    memory, sessions, messages = fold(events, CONFIG, "b", "u")
    assert reply_status(memory, reply.eventId) == {"status": "read", "at": "2026-12-01T09:02:00.000Z", "seq": 3, "by": "vendor"}
    assert memory["lastSeq"] == 4 and (sessions, messages) == (sessions0, messages0)
    assert {k: v for k, v in memory.items() if k not in ("lastSeq", "updatedAt", "replyStatus")} == \
        {k: v for k, v in base.items() if k not in ("lastSeq", "updatedAt")}
    worse = fold([*events, reported(5, 4, reply.eventId, "failed", "Message undeliverable")], CONFIG, "b", "u")[0]
    assert reply_status(worse, reply.eventId)["error"] == "Message undeliverable"


def test_our_own_delivery_failure_is_a_failed_status_until_the_vendor_says_otherwise() -> None:
    first, reply, _ = _conversation()
    events = [first, reply, failed(3, 2, reply.eventId)]
    memory = fold(events, CONFIG, "b", "u")[0]
    assert reply_status(memory, reply.eventId) == {"status": "failed", "at": "2026-12-01T09:02:00.000Z", "seq": 3,
                                                   "by": "delivery", "error": "no whatsapp credentials"}
    memory = fold([*events, reported(4, 3, reply.eventId, "delivered")], CONFIG, "b", "u")[0]
    assert reply_status(memory, reply.eventId)["status"] == "delivered"  # a send we gave up on went through


def test_the_memory_keeps_the_latest_statuses_only() -> None:
    events = [reported(i, i, f"r{i}", "delivered") for i in range(1, MAX_STATUSES + 6)]
    memory = fold(events, CONFIG, "b", "u")[0]
    assert sorted(memory["replyStatus"]) == sorted(f"r{i}" for i in range(6, MAX_STATUSES + 6))


def test_replay_verify_names_a_reply_to_a_message_that_gets_none() -> None:
    first, reply, sid = _conversation()
    reaction = inbound(3, 5, "👍", "reaction", reply.eventId)
    assert unwanted_replies([first, reply, reaction]) == []
    (found,) = unwanted_replies([first, reply, reaction, answer(4, 6, reaction, sid)])
    assert "answers in-3, a reaction, which gets no reply" in found


# ---- any interleaving ------------------------------------------------------------------------

STEP = st.sampled_from(["text", "button", "location", "reaction", "unreact", "delivered", "read", "failed", "lost"])


def _events(steps: list[str]) -> list[Event]:
    """A conversation from steps: text answered by the AI, reactions and statuses on earlier replies."""
    events: list[Event] = []
    replies: list[str] = []
    memory = empty_memory("b", "u")
    for i, step in enumerate(steps):
        seq, minutes = len(events) + 1, i * 7
        if step in ("text", "button", "location"):
            event = inbound(seq, minutes, f"mesaj {i}", step)
        elif step in ("reaction", "unreact"):
            event = inbound(seq, minutes, "👍" if step == "reaction" else "", "reaction",
                            replies[i % len(replies)] if replies else None)
        elif step == "lost":
            event = failed(seq, minutes, replies[i % len(replies)] if replies else "r-none")
        else:
            event = reported(seq, minutes, replies[i % len(replies)] if replies else "r-none", step)
        events.append(event)
        memory = apply(memory, event, CONFIG).memory
        if needs_reply(event):
            ctx = memory["sessionContext"]
            events.append(answer(seq + 1, minutes + 0.5, event, ctx["sessionId"], f"răspuns {i}"))
            memory = apply(memory, events[-1], CONFIG).memory
            replies.append(events[-1].eventId)
    return events


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=25))
def test_any_interleaving_folds_the_same_and_only_text_and_buttons_call_for_a_reply(steps: list[str]) -> None:
    events = _events(steps)
    one_by_one = CONVERSATION.empty("b", "u")
    for event in events:
        one_by_one, _ = CONVERSATION.apply(one_by_one, event, CONFIG)
        one_by_one, _ = CONVERSATION.apply(one_by_one, event, CONFIG)  # a redelivery changes nothing
    replayed, _ = fold_events(CONVERSATION, list(reversed(events)), CONFIG, "b", "u")
    assert replayed == one_by_one
    obliged = [e.eventId for e in events if needs_reply(e)]
    assert obliged == [e.eventId for e in events if e.type == "MessageReceived" and e.payload.kind in ("text", "button")]
    assert unwanted_replies(events) == []
    ctx = replayed.get("sessionContext") or {}
    said = [e for e in events if e.type == "MessageReceived" and e.payload.kind != "reaction"]
    if said:  # the window and the session's last message are the last message that was not a reaction
        assert ctx["lastInbound"]["eventId"] == said[-1].eventId
    assert len(replayed.get("replyStatus") or {}) <= MAX_STATUSES
