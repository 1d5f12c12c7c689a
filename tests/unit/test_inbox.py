"""The inbox's pure parts: the signed session cookie, CSRF, unread counts and escaped templates."""

from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from cryptography.fernet import Fernet
from starlette.requests import Request
from starlette.responses import Response

from agentstream.adapters.http import inbox_session
from agentstream.adapters.http.inbox_data import Conversation, local_time
from agentstream.adapters.http.inbox_routes import _fragment
from agentstream.adapters.http.inbox_session import COOKIE, InboxSession, csrf_ok, read_session, write_session
from agentstream.adapters.dynamo.inbox_views import unread
from agentstream.events import new_event, reply_event_id
from agentstream.projections.conversation import FoldConfig, fold

HOSTILE = "<script>alert('x')</script> '; DROP TABLE sessions;-- & \"q\""


def deps(key: str | None = None, base: str = "http://localhost:8080") -> Any:
    settings = SimpleNamespace(credentials_key=key or Fernet.generate_key().decode(), public_base_url=base)
    return SimpleNamespace(settings=settings)


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie is not None else []
    return Request({"type": "http", "method": "GET", "path": "/inbox", "headers": headers})


def cookie_of(d: Any, session: InboxSession) -> tuple[str, str]:
    response = Response()
    write_session(d, response, session)
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


def test_a_signed_in_session_round_trips_and_its_cookie_is_httponly_and_strict() -> None:
    d = deps()
    value, header = cookie_of(d, InboxSession("tok", "demo-salon", "Ana", "abcd", "sid-1"))
    flags = {p.strip().lower() for p in header.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/inbox"} <= flags and "secure" not in flags
    assert read_session(d, request_with(value)) == InboxSession("tok", "demo-salon", "Ana", "abcd", "sid-1")
    _, secure = cookie_of(deps(base="https://inbox.example"), InboxSession("tok"))
    assert "secure" in {p.strip().lower() for p in secure.split(";")[1:]}


def test_a_tampered_foreign_or_old_cookie_is_no_session(monkeypatch: Any) -> None:
    d = deps()
    value, _ = cookie_of(d, InboxSession("tok", "demo-salon", "Ana", "abcd"))
    assert read_session(d, request_with(value[:-3] + "xyz")) is None
    assert read_session(deps(), request_with(value)) is None  # signed with another secret key
    assert read_session(d, request_with("")) is None and read_session(d, request_with(None)) is None
    later = time.time() + inbox_session.MAX_AGE_S + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert read_session(d, request_with(value)) is None


def test_csrf_needs_the_session_token() -> None:
    session = InboxSession("the-token")
    assert csrf_ok(session, "the-token")
    assert not csrf_ok(session, "other") and not csrf_ok(session, "") and not csrf_ok(session, None)
    assert not csrf_ok(None, "the-token")


def test_unread_counts_customer_messages_after_the_seen_seq() -> None:
    messages = [{"type": "user", "seq": 1}, {"type": "agent", "seq": 2}, {"type": "user", "seq": 3},
                {"type": "user", "seq": 5}, {"type": "agent", "seq": 6}]
    assert [unread(messages, seen) for seen in (0, 2, 3, 6)] == [3, 2, 1, 0]


def test_fragments_escape_every_text() -> None:
    convo = Conversation(
        {"sessionId": "s<1>", "userId": HOSTILE, "status": "human", "channel": "websocket", "lastMessageAt": None},
        [{"type": "user", "seq": 1, "content": HOSTILE, "timestamp": "2026-12-01T10:00:00.000Z", "metadata": {}},
         {"type": "agent", "seq": 2, "content": "ok", "metadata": {"author": "human", "authorName": "<i>Ana</i>"}}],
        [("name", HOSTILE)], unread=1)
    session = InboxSession("tok", "demo-salon", "<i>Ana</i>", "k")
    html = _fragment("inbox_messages.html", c=convo) + _fragment("inbox_rows.html", rows=[convo]) \
        + _fragment("inbox_actions.html", c=convo, session=session)
    assert "<script>" not in html and "<i>" not in html and "s<1>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#39;; DROP TABLE sessions;-- &amp; &#34;q&#34;" in html
    assert "&lt;i&gt;Ana&lt;/i&gt;" in html and "s%3C1%3E" in html


def test_times_are_shown_in_the_business_time_zone() -> None:
    assert local_time("2026-12-01T15:02:09.123Z", "Europe/Bucharest") == "17:02"
    assert local_time("2026-07-01T15:02:09.123Z", "Europe/Bucharest", "%Y-%m-%d %H:%M") == "2026-07-01 18:02"  # summer time
    assert local_time("2026-12-01T15:02:09.123Z", "Not/AZone") == "15:02" and local_time(None, "UTC") == ""


def _folded_conversation(*extra: str) -> Conversation:
    """A conversation folded from events: a message, our reply, then `extra` (reaction, removed,
    read, failed, stray) in that order."""

    def event(kind: str, seq: int, payload: dict[str, Any], event_id: str | None = None) -> Any:
        at = datetime.fromisoformat(f"2026-12-01T10:{seq:02d}:00+00:00")
        return new_event(kind, business_id="b", user_id="u", channel="whatsapp", payload=payload, event_id=event_id,
                         occurred_at=at).with_seq(seq)

    first = event("MessageReceived", 1, {"content": "Aveți loc mâine?"}, "in-1")
    memory, _, _ = fold([first], FoldConfig(), "b", "u")
    sid = memory["sessionContext"]["sessionId"]
    reply_id = reply_event_id("in-1")
    events = [first, event("ReplyGenerated", 2, {"content": "Da, la 10.", "inReplyTo": "in-1", "sessionId": sid,
                                                 "model": "m"}, reply_id)]
    steps = {
        "reaction": ("MessageReceived", {"content": "👍", "kind": "reaction", "reactsTo": reply_id}),
        "removed": ("MessageReceived", {"content": "", "kind": "reaction", "reactsTo": reply_id}),
        "stray": ("MessageReceived", {"content": "❤️", "kind": "reaction", "reactsTo": "of-an-old-session"}),
        "read": ("ReplyStatusReported", {"replyEventId": reply_id, "status": "read", "at": "2026-12-01T10:09:00.000Z",
                                         "externalId": "wamid.2"}),
        "failed": ("ReplyStatusReported", {"replyEventId": reply_id, "status": "failed", "at": "2026-12-01T10:09:00.000Z",
                                           "externalId": "wamid.2", "error": "<b>Re-engagement message</b>"}),
    }
    events += [event(steps[name][0], 3 + i, steps[name][1], f"x-{i}") for i, name in enumerate(extra)]
    memory, _, messages = fold(events, FoldConfig(), "b", "u")
    view = {"sessionId": sid, "userId": "u", "status": "ai", "channel": "whatsapp", "lastMessageAt": None}
    return Conversation(view, sorted(messages.values(), key=lambda m: m["seq"]), memory=memory)


def _shown(convo: Conversation) -> str:
    return " ".join(_fragment("inbox_messages.html", c=convo).split())


def test_a_reaction_shows_on_the_message_it_is_to_and_a_removed_one_does_not() -> None:
    convo = _folded_conversation("reaction")
    html = _shown(convo)
    assert [m["content"] for m in convo.shown] == ["Aveți loc mâine?", "Da, la 10."]
    assert 'Da, la 10.<span class="reactions" title="the customer\'s reaction">👍</span>' in html
    assert "(reaction)" not in html
    assert "👍" not in _shown(_folded_conversation("reaction", "removed"))
    assert unread(convo.messages, 2) == 1  # the owner is told something new came


def test_a_reaction_to_a_message_not_shown_is_a_line_of_its_own() -> None:
    html = _shown(_folded_conversation("stray"))
    assert 'class="msg user reaction"' in html and "❤️ on: an earlier message" in html


def test_a_read_reply_and_a_vendor_failure_show_on_the_reply() -> None:
    read = _shown(_folded_conversation("read"))
    assert '<span class="delivery read">read 10:09</span>' in read
    failed = _shown(_folded_conversation("read", "failed"))
    assert '<span class="delivery failed">not delivered: &lt;b&gt;Re-engagement message&lt;/b&gt;</span>' in failed
    assert "delivery" not in _shown(_folded_conversation())  # nothing reported: nothing shown


def test_the_list_says_when_our_last_message_was_not_delivered() -> None:
    row = " ".join(_fragment("inbox_rows.html", rows=[_folded_conversation("read", "failed")]).split())
    assert "our last message was not delivered" in row and 'title="&lt;b&gt;Re-engagement message&lt;/b&gt;"' in row
    for fine in (_folded_conversation("read"), _folded_conversation()):
        assert fine.undelivered is None and "not delivered" not in _fragment("inbox_rows.html", rows=[fine])
