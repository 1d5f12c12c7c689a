"""The prompt of a reply (the seed's RAG context, built from projections; pure).

System instructions for the business type, business info, dynamic business RAG, what we know
about the customer (their current facts), the customer's memory, the time context, the session's
last 4 messages and the new message, within a character budget: the oldest RAG entries go first,
then the oldest turns, then business info, the facts and memory are shortened, in that order; the
system instructions, the time context and the current message always stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentstream.projections.booking_prompt import bookings_blocks
from agentstream.projections.conversation import CONTENT_LIMIT, LAST_MESSAGES
from agentstream.projections.facts import business_zone
from agentstream.projections.timecontext import TimeContext, describe

INFO_FIELDS = ("name", "description", "address", "phone", "services", "openingHours", "timezone", "language")
LANGUAGES = {"ro": "Romanian", "en": "English"}
DEFAULT_INSTRUCTIONS = "You are a helpful customer-service assistant."
SEPARATOR = "\n\n"
FACT_SOURCES = {"stated": "said by the customer", "channel": "from the channel",
                "corrected": "corrected by the customer", "owner": "set by the business", "model": "read from a message"}


@dataclass(frozen=True)
class ReplyContext:
    """Everything a reply to one inbound message may use."""

    business: dict[str, Any]
    system_instructions: str
    rag_entries: list[dict[str, Any]]
    memory: dict[str, Any]
    time: TimeContext
    message: str
    language: str = "en"
    inbound_event_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    facts: list[dict[str, Any]] = field(default_factory=list)  # current_facts() at the message's time
    burst_event_ids: tuple[str, ...] = ()  # the earlier messages of a burst: in `message`, not among the turns

    def earlier_turns(self) -> list[dict[str, Any]]:
        """The session's last messages before the current one (at most 4), oldest first."""
        turns = list((self.memory.get("sessionContext") or {}).get("lastMessages") or [])
        if self.inbound_event_id:
            current = {self.inbound_event_id, *self.burst_event_ids}
            turns = [t for t in turns if t.get("eventId") not in current]
        elif turns and turns[-1].get("role") == "user" and turns[-1].get("content") == self.message[:CONTENT_LIMIT]:
            turns = turns[:-1]
        return turns[-LAST_MESSAGES:]


def business_block(business: dict[str, Any]) -> str:
    """The business's info fields in a fixed order (nested keys sorted: a stored map's key order
    is not guaranteed, and the same info must give the same prompt)."""
    info = {k: _sorted(business[k]) for k in INFO_FIELDS if business.get(k) not in (None, "", [], {})}
    return "Business information: " + json.dumps(info, ensure_ascii=False, sort_keys=False)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def memory_block(memory: dict[str, Any]) -> str:
    topics = ", ".join((memory.get("sessionContext") or {}).get("recentTopics") or []) or "none"
    return f"Customer memory: {memory.get('summary') or 'new customer'}. Recent topics: {topics}."


def fact_text(fact: dict[str, Any]) -> str:
    """A fact's value for people: 'Ana', 'tuns on 2026-11-26 at 10:00 (requested, not confirmed)'."""
    value = fact["value"]
    if fact["kind"] == "order":
        return f"reference {value.get('ref')}"
    if fact["kind"] != "appointment":
        return str(value)
    at = str(value.get("at"))
    when = f"{at[:10]} at {at[11:16]}" if len(at) > 10 else f"{at} (any time)"
    return f"{value.get('service') or 'appointment'} on {when} (requested, not confirmed)"


def facts_block(facts: list[dict[str, Any]], timezone: str) -> str:
    """'What we know about the customer:' and one line per current fact, with when it was stated
    (the local date in the business's time zone) and how we know it."""
    if not facts:
        return ""
    zone = business_zone(timezone)
    lines = []
    for fact in facts:
        stated = datetime.fromisoformat(fact["validFrom"].replace("Z", "+00:00")).astimezone(zone).date()
        how = FACT_SOURCES.get(fact["source"], fact["source"])
        lines.append(f"- {fact['kind']}: {fact_text(fact)} ({how}, {stated.isoformat()})")
    return "What we know about the customer:\n" + "\n".join(lines)


def rag_lines(entries: list[dict[str, Any]]) -> list[str]:
    return [f"- {e.get('key', '')}: {e.get('content', '')}" for e in entries if e.get("content")]


def _chat_turns(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": "assistant" if t.get("role") == "agent" else "user", "content": str(t.get("content", ""))} for t in turns]


def _fit(text: str, room: int) -> str:
    """`text`, cut to `room` characters (with an ellipsis), or nothing if there is no room."""
    if len(text) <= room:
        return text
    return text[: room - 1] + "…" if room > 1 else ""


def build_prompt(ctx: ReplyContext, budget_chars: int = 12_000) -> list[dict[str, str]]:
    """OpenAI chat messages: one system message, the earlier turns, then the current message."""
    fixed = [
        ctx.system_instructions.strip() or DEFAULT_INSTRUCTIONS,
        f"Answer in {LANGUAGES.get(ctx.language, 'English')}. {describe(ctx.time, 'en')}",
        *bookings_blocks(ctx.extra),
    ]
    info = [business_block(ctx.business), facts_block(ctx.facts, ctx.time.timezone), memory_block(ctx.memory)]
    rag = rag_lines(ctx.rag_entries)
    turns = _chat_turns(ctx.earlier_turns())

    def size() -> int:
        knowledge = len("Business knowledge:\n") + sum(len(r) + 1 for r in rag) if rag else 0
        return (sum(map(len, fixed + info)) + knowledge + len(SEPARATOR) * (len(fixed) + sum(map(bool, info)))
                + sum(len(t["content"]) for t in turns) + len(ctx.message))

    while size() > budget_chars and rag:
        rag.pop(0)
    while size() > budget_chars and turns:
        turns.pop(0)
    for i in (0, 1, 2):  # last resort: shorten business info, then the facts, then memory
        info[i] = _fit(info[i], len(info[i]) - (size() - budget_chars))
    blocks = [*fixed, *(b for b in info if b)]
    if rag:
        blocks.append("Business knowledge:\n" + "\n".join(rag))
    return [{"role": "system", "content": SEPARATOR.join(blocks)}, *turns, {"role": "user", "content": ctx.message}]
