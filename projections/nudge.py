"""Idle nudges: when a quiet session may get its one "are you still there?" message (pure).

A nudge may be sent at an instant T when all hold: nudges are on for the business
(`nudgeAfterMinutes`), T is at least that long after the session's last message and before the
session expires (its idle timeout), the business is open at T in its time zone (a lunch break, a
weekday without hours or one of its `closedDays` holidays is not open; hours past midnight are), and, on a channel with a messaging window
(WhatsApp, Messenger, Instagram), T is within it (24 hours of the customer's last message). The earliest
such instant is the nudge's due time; the conversation fold decides whether a NudgeSent stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream import channel_specs
from agentstream.projections import templates
from agentstream.projections.base import FoldConfig
from agentstream.projections.timecontext import _week, _zone

Item = dict[str, Any]
DEFAULT_TEXTS = {
    "ro": "Mai sunteți acolo? Dacă mai aveți întrebări, vă stăm la dispoziție.",
    "en": "Are you still there? If you have any other questions, we are happy to help.",
}


@dataclass(frozen=True)
class Window:
    """When the nudge may be sent: from `start` (inclusive) to `until` (exclusive), UTC."""

    start: datetime
    until: datetime


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _merged(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted local intervals with overlapping and back-to-back ones joined."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def open_from(at: datetime, tz: str, hours: dict[str, Any],
              closed: Mapping[str, str] | None = None) -> tuple[datetime, datetime] | None:
    """The first open stretch that ends after `at` (UTC, its start not before `at`), or None if
    the business does not open within a week (`closed`: its closed days, local ISO dates)."""
    zone, _ = _zone(tz)
    local = at.astimezone(zone).replace(tzinfo=None)
    for start, end in _merged(_week(local.date(), hours or {}, closed)):
        if end > local:
            begin = at if start <= local else start.replace(tzinfo=zone).astimezone(timezone.utc)
            finish = end.replace(tzinfo=zone).astimezone(timezone.utc)
            if finish > begin:
                return begin, finish
    return None


def caps(ctx: Item, config: FoldConfig) -> datetime:
    """The instant from which no nudge may be sent: the session's expiry, or earlier the end of
    the channel's messaging window (WhatsApp, Messenger, Instagram: 24 hours after the
    customer's last message) unless the business has a nudge template for that channel."""
    cap = _parse(ctx["lastMessageAt"]) + timedelta(minutes=config.idle_minutes)
    inbound = ctx.get("lastInbound") or {}
    hours = channel_specs.window_hours(inbound.get("channel", ""))
    if hours is not None and not templates.has_template(config.templates, "nudge", inbound.get("channel", "")):
        cap = min(cap, _parse(inbound["at"]) + timedelta(hours=hours))
    return cap


def window(ctx: Item, config: FoldConfig, not_before: datetime | None = None) -> Window | None:
    """The first instant at or after `not_before` (and after the idle time) a nudge may be sent,
    with the end of that stretch; None if there is none before the caps."""
    if config.nudge_after_minutes <= 0 or config.nudge_after_minutes >= config.idle_minutes:
        return None
    idle_at = _parse(ctx["lastMessageAt"]) + timedelta(minutes=config.nudge_after_minutes)
    stretch = open_from(max(idle_at, not_before or idle_at), config.timezone, config.opening_hours, config.closed_days)
    if stretch is None:
        return None
    until = min(stretch[1], caps(ctx, config))
    return Window(stretch[0], until) if stretch[0] < until else None


def due(ctx: Item, config: FoldConfig) -> Window | None:
    """When the session's nudge is due: None once it has had one (sent or refused), while a person
    has the conversation, once the customer opted out, or when no instant qualifies."""
    if ctx.get("status") != "active" or ctx.get("nudge") or ctx.get("handoff") or ctx.get("optedOut"):
        return None
    return window(ctx, config)


def refusal(ctx: Item, at: datetime, config: FoldConfig, with_person: bool) -> str | None:
    """Why a nudge at `at` may not stand (None: it may)."""
    if ctx.get("nudge"):
        return "already nudged"
    if with_person:
        return "handed off"
    if config.nudge_after_minutes <= 0 or config.nudge_after_minutes >= config.idle_minutes:
        return "nudges off"
    if at < _parse(ctx["lastMessageAt"]) + timedelta(minutes=config.nudge_after_minutes):
        return "not idle"
    if at >= caps(ctx, config):
        return "expired or outside the vendor's window"
    found = window(ctx, config, at)
    return None if found is not None and found.start == at else "closed"


def text(config: FoldConfig, language: str) -> str:
    """The nudge in the customer's language (the business's text, else the default)."""
    texts = {**DEFAULT_TEXTS, **{k: v for k, v in (config.nudge_texts or {}).items() if isinstance(v, str) and v.strip()}}
    return texts.get(language) or texts.get(config.language) or texts["en"]


def settings_error(info: dict[str, Any], default_idle_minutes: int = 60) -> str | None:
    """Why a business's nudge settings are refused (None: fine or off)."""
    settings = info.get("settings") or {}
    after = settings.get("nudgeAfterMinutes")
    if after is None:
        return None
    idle = settings.get("sessionIdleMinutes", default_idle_minutes)
    if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
        return f"{info.get('businessId')}: settings.nudgeAfterMinutes must be a number of minutes, got {after!r}"
    if after and after >= idle:
        return (f"{info.get('businessId')}: settings.nudgeAfterMinutes ({after}) must be shorter than the idle "
                f"timeout sessionIdleMinutes ({idle})")
    texts = settings.get("nudgeTexts")
    if texts is not None and not (isinstance(texts, dict) and all(isinstance(v, str) and v.strip() for v in texts.values())):
        return f"{info.get('businessId')}: settings.nudgeTexts must map a language to a non-empty text"
    return None
