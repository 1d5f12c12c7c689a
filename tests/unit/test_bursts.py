"""The burst decision: when a burst is answered, and which inbounds a reply covers (from the log)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from agentstream.events import Event, MessageReceived, ReplyGenerated, new_event, reply_event_id
from agentstream.projections.kinds import needs_reply
from agentstream.streams.bursts import (
    BurstWindow, ask_again, burst_text, covered_by, covers, first_seqs, uncovered, wait_s, window_of,
)

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def inbound(seq: int, text: str = "hi", kind: str = "text") -> MessageReceived:
    event = new_event("MessageReceived", business_id="b", user_id="u", channel="websocket", occurred_at=T0 + timedelta(seconds=seq),
                      event_id=f"m{seq}", payload={"content": text, "externalId": f"c{seq}", "kind": kind})
    return event.with_seq(seq)  # type: ignore[return-value]


def reply(seq: int, first: MessageReceived, upto: int) -> ReplyGenerated:
    event = new_event("ReplyGenerated", business_id="b", user_id="u", channel="websocket", event_id=reply_event_id(first.eventId),
                      payload={"content": "ok", "inReplyTo": first.eventId, "sessionId": "s", "model": "m", "coversUpToSeq": upto})
    return event.with_seq(seq)  # type: ignore[return-value]


def test_chat_channels_wait_and_gmail_and_rest_do_not() -> None:
    assert window_of({}, "websocket") == BurstWindow(2500, 8000)
    assert window_of({}, "whatsapp").waits and window_of({}, "telegram").waits
    assert not window_of({}, "gmail").waits and not window_of({}, "rest").waits


def test_business_settings_come_first_then_the_process_default() -> None:
    info = {"settings": {"replyAfterQuietMs": 1000, "replyWithinMs": 3000}}
    assert window_of(info, "gmail") == BurstWindow(1000, 3000)
    assert window_of({}, "websocket", default_quiet_ms=0) == BurstWindow(0, 8000)
    assert window_of({"settings": {"replyAfterQuietMs": 0}}, "websocket", default_quiet_ms=2500).waits is False


def test_a_bad_setting_is_ignored_for_the_default() -> None:
    assert window_of({"settings": {"replyAfterQuietMs": "soon", "replyWithinMs": -1}}, "websocket") == BurstWindow(2500, 8000)


@given(quiet=st.integers(1, 10_000), within=st.integers(0, 20_000), gaps=st.lists(st.floats(0, 5), max_size=8),
       later=st.floats(0, 30))
def test_a_burst_is_answered_when_quiet_or_when_its_oldest_is_old_enough(quiet: int, within: int, gaps: list[float],
                                                                         later: float) -> None:
    window = window_of({"settings": {"replyAfterQuietMs": quiet, "replyWithinMs": within}}, "websocket")
    first = 100.0
    last = first + sum(gaps)
    now = last + later
    wait = wait_s(window, first, last, now)
    assert wait >= 0
    answer_at = now + wait
    quiet_enough = answer_at >= last + window.quiet_ms / 1000 - 1e-9
    old_enough = answer_at >= first + window.within_ms / 1000 - 1e-9
    assert quiet_enough or old_enough  # never before one of the two
    if wait > 0:  # and not later than the first of the two
        assert answer_at <= min(last + window.quiet_ms / 1000, first + window.within_ms / 1000) + 1e-9


def test_a_message_during_the_model_call_asks_again_only_within_the_window() -> None:
    window = BurstWindow(2500, 8000)
    assert ask_again(window, first_at=0.0, now=7.9)
    assert not ask_again(window, first_at=0.0, now=8.0)


def test_the_burst_text_holds_every_message_in_order() -> None:
    assert burst_text([inbound(1, "Buna"), inbound(2, "as vrea o programare"), inbound(3, "joi la 10?")]) == \
        "Buna\nas vrea o programare\njoi la 10?"


def test_a_reply_covers_its_burst_and_nothing_after_it() -> None:
    a, b, c, d = inbound(1), inbound(2), inbound(3), inbound(5)
    r = reply(4, a, upto=3)
    assert all(covers(r, m, a.seq) for m in (a, b, c)) and not covers(r, d, a.seq)
    assert uncovered([a, b, c, d], [a, b, c, r, d]) == [d]


def test_an_upcast_reply_covers_only_its_inbound() -> None:
    a, b = inbound(1), inbound(2)
    r = reply(3, a, upto=0)  # a v2 reply: coversUpToSeq 0
    assert covers(r, a) and not covers(r, b)


def test_the_inbounds_a_reply_covered_are_read_from_the_log_without_those_needing_none() -> None:
    a, b, c = inbound(1, "Buna"), inbound(2, "👍", kind="reaction"), inbound(3, "joi la 10?")
    r = reply(4, a, upto=3)
    assert covered_by(r, [a, b, c], needs_reply) == [a, c]


@given(st.lists(st.sampled_from(["in", "burst-reply"]), min_size=1, max_size=30))
def test_every_inbound_is_covered_at_most_once_whatever_the_order(kinds: list[str]) -> None:
    """A log of inbounds and burst replies (each covering the uncovered ones before it, as the
    worker writes them): every inbound before the last reply is covered exactly once."""
    events: list[Event] = []
    for seq, kind in enumerate(kinds, start=1):
        if kind == "in":
            events.append(inbound(seq))
            continue
        todo = uncovered([e for e in events if isinstance(e, MessageReceived)], events)
        if todo:
            events.append(reply(seq, todo[0], upto=todo[-1].seq))
    replies = [e for e in events if isinstance(e, ReplyGenerated)]
    firsts = first_seqs(events)
    for m in (e for e in events if isinstance(e, MessageReceived)):
        assert sum(covers(r, m, firsts[r.eventId]) for r in replies) == (1 if any(r.seq > m.seq for r in replies) else 0)


def test_verify_reports_an_inbound_covered_twice() -> None:
    from agentstream.streams.bursts import covered_twice

    a, b = inbound(1), inbound(2)
    assert covered_twice([a, b, reply(3, a, upto=2)]) == []
    (problem,) = covered_twice([a, b, reply(3, a, upto=2), reply(4, b, upto=2)])
    assert "inbound m2 (seq 2) is covered by 2 replies" in problem
