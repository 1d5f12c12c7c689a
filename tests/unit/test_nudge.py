"""Idle nudges: when one is due (opening hours, lunch breaks, Sundays, DST days, past midnight,
WhatsApp's 24 hours) and what the conversation fold makes of a NudgeSent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentstream.bootstrap import BusinessDataError, check_businesses
from agentstream.adapters.dynamo.business import nudge_config
from agentstream.events import Event, new_event
from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import CONVERSATION, active_session, apply, empty_memory, nudge_stands
from agentstream.projections.nudge import DEFAULT_TEXTS, Window, settings_error, window
from agentstream.streams.reply_policy import published_when_folded

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SALON = {d: [["09:00", "13:00"], ["14:00", "19:00"]] for d in WEEK[:5]} | {"sat": [["09:00", "15:00"]], "sun": []}
RESTAURANT = {d: [["17:00", "02:00"]] for d in WEEK}  # open past midnight
BAKERY = {"sun": [["04:00", "12:00"]]}  # opens in the hour a DST change moves
BAR = {"sat": [["22:00", "04:00"]]}  # open across the night the clocks change
BUC = "Europe/Bucharest"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def config(hours: dict[str, Any], nudge: int = 30, idle: int = 600, tz: str = BUC) -> FoldConfig:
    return FoldConfig(idle_minutes=idle, timezone=tz, opening_hours=hours, nudge_after_minutes=nudge, language="ro")


def ctx(last: datetime, channel: str = "websocket", **extra: Any) -> dict[str, Any]:
    stamp = last.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"status": "active", "lastMessageAt": stamp, "lastInbound": {"channel": channel, "at": stamp}, **extra}


@pytest.mark.parametrize("last, cfg, channel, expected", [
    # Bucharest salon, Tuesday 24 Nov 2026 (UTC+2). 10:00 local, quiet 30 min: nudged at 10:30, until the lunch break
    (utc(2026, 11, 24, 8, 0), config(SALON), "websocket", (utc(2026, 11, 24, 8, 30), utc(2026, 11, 24, 11, 0))),
    # 12:45 local: idle at 13:15, in the lunch break: at 14:00 when it reopens, until 19:00
    (utc(2026, 11, 24, 10, 45), config(SALON), "websocket", (utc(2026, 11, 24, 12, 0), utc(2026, 11, 24, 17, 0))),
    # 02:30 local: idle at 03:00 local, closed: never at night, at 09:00 when it opens (until it expires, 12:30)
    (utc(2026, 11, 24, 0, 30), config(SALON), "websocket", (utc(2026, 11, 24, 7, 0), utc(2026, 11, 24, 10, 30))),
    # 18:00 local: nudged at 18:30, until closing at 19:00
    (utc(2026, 11, 24, 16, 0), config(SALON), "websocket", (utc(2026, 11, 24, 16, 30), utc(2026, 11, 24, 17, 0))),
    # 18:45 local: idle after closing; the next opening (Wednesday 09:00) is after the session expires: none
    (utc(2026, 11, 24, 16, 45), config(SALON), "websocket", None),
    # Sunday 29 Nov 11:00 local: the salon is closed all day and the session expires first: none
    (utc(2026, 11, 29, 9, 0), config(SALON), "websocket", None),
    # Saturday 28 Nov 14:50 local, a long idle timeout: not on Sunday, Monday at 09:00
    (utc(2026, 11, 28, 12, 50), config(SALON, idle=4000), "websocket", (utc(2026, 11, 30, 7, 0), utc(2026, 11, 30, 11, 0))),
    # the same on WhatsApp: Monday 09:00 is past 24 h after the customer's message: none
    (utc(2026, 11, 28, 12, 50), config(SALON, idle=4000), "whatsapp", None),
    # WhatsApp, Friday 18:50 local: Saturday 09:00 is within the 24 h, until Saturday's closing at 15:00
    (utc(2026, 11, 27, 16, 50), config(SALON, idle=4000), "whatsapp", (utc(2026, 11, 28, 7, 0), utc(2026, 11, 28, 13, 0))),
    # DST spring (Sun 29 Mar 2026, 03:00 EET -> 04:00 EEST): a 04:00 opening is 01:00 UTC, not 02:00
    (utc(2026, 3, 29, 0, 0), config(BAKERY), "websocket", (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 9, 0))),
    # DST autumn (Sun 25 Oct 2026, 04:00 EEST -> 03:00 EET): a 04:00 opening is 02:00 UTC
    (utc(2026, 10, 25, 0, 0), config(BAKERY), "websocket", (utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 10, 0))),
    # the bar's longer autumn night: 03:20 EET (01:20 UTC) is open, until 04:00 EET (02:00 UTC)
    (utc(2026, 10, 25, 1, 0), config(BAR, nudge=20), "websocket", (utc(2026, 10, 25, 1, 20), utc(2026, 10, 25, 2, 0))),
    # the bar's shorter spring night: 01:10 UTC is 04:10 EEST, already closed: none (an UTC+2 clock would say 03:10)
    (utc(2026, 3, 29, 0, 40), config(BAR), "websocket", None),
    # a restaurant open past midnight: Wednesday 01:00 local, nudged at 01:30, until 02:00
    (utc(2026, 11, 24, 23, 0), config(RESTAURANT), "websocket", (utc(2026, 11, 24, 23, 30), utc(2026, 11, 25, 0, 0))),
    # 01:45 local: idle at 02:15, closed: at 17:00 when it opens again
    (utc(2026, 11, 24, 23, 45), config(RESTAURANT, idle=1200), "websocket", (utc(2026, 11, 25, 15, 0), utc(2026, 11, 25, 19, 45))),
    # nudges off (0), or not shorter than the idle timeout: never
    (utc(2026, 11, 24, 8, 0), config(SALON, nudge=0), "websocket", None),
    (utc(2026, 11, 24, 8, 0), config(SALON, nudge=600), "websocket", None),
    # no opening hours known: never
    (utc(2026, 11, 24, 8, 0), config({}), "websocket", None),
])
def test_nudge_window(last: datetime, cfg: FoldConfig, channel: str, expected: tuple[datetime, datetime] | None) -> None:
    assert window(ctx(last, channel), cfg) == (Window(*expected) if expected else None)


# ---- the fold ----------------------------------------------------------------------------------

SALON_CFG = FoldConfig(idle_minutes=60, timezone=BUC, opening_hours=SALON, nudge_after_minutes=30, language="ro")
T0 = utc(2026, 11, 24, 8, 0)  # Tuesday 10:00 in Bucharest


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(seq: int, minutes: float, channel: str = "websocket", text: str = "Bună, aveți loc mâine?") -> Event:
    return new_event("MessageReceived", business_id="b", user_id="u", channel=channel, occurred_at=at(minutes),
                     payload={"content": text, "replyTo": {"socket": "widget"}}, event_id=f"m{seq}").with_seq(seq)


def nudge(seq: int, minutes: float, sid: str) -> Event:
    return new_event("NudgeSent", business_id="b", user_id="u", channel="websocket", occurred_at=at(minutes),
                     payload={"sessionId": sid, "content": "Mai sunteți acolo?", "deliverTo": {"socket": "widget"}},
                     event_id=f"n{seq}").with_seq(seq)


def system(kind: str, seq: int, minutes: float, **payload: str) -> Event:
    return new_event(kind, business_id="b", user_id="u", channel="system", occurred_at=at(minutes),
                     payload=payload, event_id=f"{kind}{seq}").with_seq(seq)


def started(cfg: FoldConfig = SALON_CFG, channel: str = "websocket") -> tuple[dict[str, Any], str]:
    first = apply(empty_memory("b", "u"), msg(1, 0, channel), cfg)
    return first.memory, active_session(first.memory)["sessionId"]


def test_session_item_is_due_at_the_earlier_of_nudge_and_expiry() -> None:
    first = apply(empty_memory("b", "u"), msg(1, 0), SALON_CFG)
    (session,) = first.sessions
    assert session["nudgeDue"] == {"at": "2026-11-24T08:30:00.000Z", "until": "2026-11-24T09:00:00.000Z",
                                   "content": DEFAULT_TEXTS["ro"], "channel": "websocket", "deliverTo": {"socket": "widget"}}
    assert session["nextDueAt"] == "2026-11-24T08:30:00.000Z" and session["expiresAt"] == "2026-11-24T09:00:00.000Z"
    off = apply(empty_memory("b", "u"), msg(1, 0), FoldConfig(idle_minutes=60, opening_hours=SALON, timezone=BUC))
    assert "nudgeDue" not in off.sessions[0] and off.sessions[0]["nextDueAt"] == off.sessions[0]["expiresAt"]


def test_nudge_text_follows_the_customer_language_and_the_business_texts() -> None:
    cfg = FoldConfig(idle_minutes=60, timezone=BUC, opening_hours=SALON, nudge_after_minutes=30, language="ro",
                     nudge_texts={"en": "Still there? Reply any time."})
    english = apply(empty_memory("b", "u"), msg(1, 0, text="Hello, do you have a slot tomorrow?"), cfg)
    assert english.sessions[0]["nudgeDue"]["content"] == "Still there? Reply any time."
    romanian = apply(empty_memory("b", "u"), msg(1, 0), cfg)
    assert romanian.sessions[0]["nudgeDue"]["content"] == DEFAULT_TEXTS["ro"]


def test_a_due_nudge_stands_once() -> None:
    memory, sid = started()
    sent = apply(memory, nudge(2, 31, sid), SALON_CFG)
    (message,) = sent.messages
    assert message["type"] == "agent" and message["metadata"]["author"] == "ai" and message["metadata"]["kind"] == "nudge"
    (session,) = sent.sessions
    assert session["nudge"]["status"] == "sent" and "nudgeDue" not in session
    assert session["nextDueAt"] == session["expiresAt"] == "2026-11-24T09:31:00.000Z"  # a nudge is a turn: expiry moves
    assert nudge_stands(CONVERSATION.apply(memory, nudge(2, 31, sid), SALON_CFG)[1])
    again = apply(sent.memory, nudge(3, 40, sid), SALON_CFG)
    assert again.sessions == [] and again.messages == []
    later = apply(sent.memory, msg(3, 45), SALON_CFG)  # the customer answers: no second nudge is due
    assert "nudgeDue" not in later.sessions[0]


@pytest.mark.parametrize("before, minutes, reason", [
    ([], 20, "not idle"),                                  # the timer raced nothing, but it is too early
    ([("msg", 15)], 31, "not idle"),                        # the customer wrote after the nudge was planned
    ([("HandoffRequested", 5)], 31, "handed off"),          # a handoff raced the timer
])
def test_a_nudge_the_fold_refuses_is_recorded_and_not_a_message(before: list[tuple[str, int]], minutes: int,
                                                                 reason: str) -> None:
    memory, sid = started()
    seq = 2
    for kind, when in before:
        event = msg(seq, when) if kind == "msg" else system(kind, seq, when, sessionId=sid, by="owner", reason="VIP")
        memory = apply(memory, event, SALON_CFG).memory
        seq += 1
    refused = apply(memory, nudge(seq, minutes, sid), SALON_CFG)
    assert refused.messages == []
    (session,) = refused.sessions
    assert session["nudge"] == {"eventId": f"n{seq}", "at": session["nudge"]["at"], "status": "refused", "reason": reason}
    assert "nudgeDue" not in session
    _, puts = CONVERSATION.apply(memory, nudge(seq, minutes, sid), SALON_CFG)
    assert not nudge_stands(puts)
    assert not published_when_folded(nudge(seq, minutes, sid), puts)


def test_no_nudge_in_the_lunch_break_even_if_the_timer_is_late() -> None:
    cfg = FoldConfig(idle_minutes=600, timezone=BUC, opening_hours=SALON, nudge_after_minutes=30)
    memory, sid = started(cfg)
    assert apply(memory, nudge(2, 185, sid), cfg).sessions[0]["nudge"]["reason"] == "closed"  # 13:05 local
    assert apply(memory, nudge(2, 245, sid), cfg).sessions[0]["nudge"]["status"] == "sent"  # 14:05 local


@pytest.mark.parametrize("end", ["SessionResolved", "SessionExpired", "SessionClosed"])
def test_no_nudge_after_the_session_ended(end: str) -> None:
    memory, sid = started()
    ended = apply(memory, system(end, 2, 61, sessionId=sid), SALON_CFG)
    assert ended.sessions[0]["status"] != "active" and "nextDueAt" not in ended.sessions[0]
    late = apply(ended.memory, nudge(3, 62, sid), SALON_CFG)
    assert late.sessions == [] and late.messages == []


def test_no_nudge_due_while_handed_off() -> None:
    memory, sid = started()
    handed = apply(memory, system("HandoffRequested", 2, 5, sessionId=sid, by="customer", reason="un om"), SALON_CFG)
    assert "nudgeDue" not in handed.sessions[0] and handed.sessions[0]["nextDueAt"] == handed.sessions[0]["expiresAt"]


def test_whatsapp_nudge_only_within_24_hours_of_the_customer() -> None:
    cfg = FoldConfig(idle_minutes=4000, timezone=BUC, opening_hours=SALON, nudge_after_minutes=30)
    saturday = utc(2026, 11, 28, 12, 50)  # 14:50 local; Sunday closed, Monday 09:00 is 42 h later
    first = apply(empty_memory("b", "u"), msg(1, (saturday - T0).total_seconds() / 60, "whatsapp"), cfg)
    assert "nudgeDue" not in first.sessions[0]
    sid = active_session(first.memory)["sessionId"]
    monday = (utc(2026, 11, 30, 7, 5) - T0).total_seconds() / 60
    refused = apply(first.memory, nudge(2, monday, sid), cfg)
    assert refused.messages == [] and refused.sessions[0]["nudge"]["reason"] == "expired or outside the vendor's window"


def test_one_nudge_message_per_session_in_a_folded_log() -> None:
    from agentstream.projections.conversation import fold
    _, sid = started()
    events = [msg(1, 0), nudge(2, 31, sid), msg(3, 40), nudge(4, 80, sid)]
    _, _, messages = fold(events, SALON_CFG, "b", "u")
    assert [m["messageId"] for m in messages.values() if m["metadata"].get("kind") == "nudge"] == ["n2"]


# ---- settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, error", [
    ({}, None),
    ({"sessionIdleMinutes": 60, "nudgeAfterMinutes": 30}, None),
    ({"sessionIdleMinutes": 60, "nudgeAfterMinutes": 0}, None),
    ({"sessionIdleMinutes": 60, "nudgeAfterMinutes": 60}, "must be shorter than the idle timeout"),
    ({"nudgeAfterMinutes": 90}, "must be shorter than the idle timeout"),  # the default idle timeout, 60
    ({"sessionIdleMinutes": 60, "nudgeAfterMinutes": "soon"}, "must be a number of minutes"),
    ({"sessionIdleMinutes": 60, "nudgeAfterMinutes": 30, "nudgeTexts": {"ro": ""}}, "nudgeTexts"),
])
def test_nudge_settings_are_checked(settings: dict[str, Any], error: str | None) -> None:
    found = settings_error({"businessId": "salon", "settings": settings}, 60)
    assert (found is None) if error is None else (error in found and found.startswith("salon:"))


def test_populate_refuses_a_nudge_not_shorter_than_the_idle_timeout() -> None:
    good = {"businessId": "a", "settings": {"sessionIdleMinutes": 60, "nudgeAfterMinutes": 20}}
    bad = {"businessId": "b", "settings": {"sessionIdleMinutes": 30, "nudgeAfterMinutes": 45}}
    check_businesses([good], 60)
    with pytest.raises(BusinessDataError, match="b: settings.nudgeAfterMinutes"):
        check_businesses([good, bad], 60)


def test_stored_settings_the_fold_reads() -> None:
    info = {"language": "ro", "settings": {"sessionIdleMinutes": 60, "nudgeAfterMinutes": 20, "nudgeTexts": {"ro": "Mai sunteți?"}}}
    assert nudge_config(info) == {"nudge_after_minutes": 20, "nudge_texts": {"ro": "Mai sunteți?"}, "language": "ro",
                                  "templates": {}}
    assert nudge_config({"settings": {"nudgeAfterMinutes": 60}})["nudge_after_minutes"] == 0  # not shorter: off
    assert nudge_config(None) == {"nudge_after_minutes": 0, "nudge_texts": {}, "language": "en", "templates": {}}


def test_populate_command_refuses_in_one_line(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from agentstream.bootstrap import DATA_FILES, load_data

    for name in DATA_FILES.values():
        items = load_data(name)
        if name == "businesses.json":
            business = items[0]["businessId"]
            items[0]["settings"] = {"sessionIdleMinutes": 60, "nudgeAfterMinutes": 60}
        (tmp_path / name).write_text(json.dumps(items), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNAMODB_", "KAFKA_"))}
    done = subprocess.run([sys.executable, "-m", "agentstream.cli", "populate", "--data-dir", str(tmp_path)],
                          env=env | {"AGENTSTREAM_ENV_FILE": "none", "AWS_DEFAULT_REGION": "eu-central-1"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"agentstream: refused: {business}: settings.nudgeAfterMinutes (60) must be shorter than the idle "
        "timeout sessionIdleMinutes (60)"]
