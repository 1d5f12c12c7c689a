"""The prompt context of a reply (the seed's RAG context, built from projections; pure).

System instructions for the business type, business info, dynamic business RAG, the
customer's memory, the time context, the session's last 4 messages and the new message,
trimmed to a character budget: RAG entries go first, then the oldest turns; the system
instructions, the time context and the current message always stay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentstream.projections.timecontext import TimeContext, describe

INFO_FIELDS = ("name", "description", "address", "phone", "services", "openingHours", "timezone")


@dataclass(frozen=True)
class ReplyContext:
    business: dict[str, Any]
    system_instructions: str
    rag_entries: list[dict[str, Any]]
    memory: dict[str, Any]
    time: TimeContext
    message: str
    language: str = "en"
    inbound_event_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def earlier_turns(self) -> list[dict[str, Any]]:
        """The session's last messages before the current one (at most 4)."""
        turns = (self.memory.get("sessionContext") or {}).get("lastMessages", [])
        if self.inbound_event_id:
            turns = [t for t in turns if t.get("eventId") != self.inbound_event_id]
        elif turns and turns[-1].get("role") == "user" and turns[-1].get("content") == self.message[: len(turns[-1]["content"])]:
            turns = turns[:-1]
        return turns[-4:]


def _business_block(business: dict[str, Any]) -> str:
    info = {k: business[k] for k in INFO_FIELDS if k in business}
    return "Business information:\n" + json.dumps(info, ensure_ascii=False, indent=None)


def _memory_block(memory: dict[str, Any]) -> str:
    ctx = memory.get("sessionContext") or {}
    topics = ", ".join(ctx.get("recentTopics", [])) or "none"
    return f"Customer memory: {memory.get('summary') or 'new customer'}. Recent topics: {topics}."


def build_prompt(ctx: ReplyContext, budget_chars: int = 12_000) -> list[dict[str, str]]:
    """OpenAI chat messages for the reply, within `budget_chars` characters of content."""
    language = "Romanian" if ctx.language == "ro" else "English"
    fixed = [
        ctx.system_instructions.strip() or "You are a helpful customer-service assistant.",
        f"Answer in {language}. " + describe(ctx.time, "en"),
        _business_block(ctx.business),
        _memory_block(ctx.memory),
    ]
    rag = [f"- {e['key']}: {e['content']}" for e in ctx.rag_entries]
    turns = [{"role": "assistant" if t["role"] == "agent" else "user", "content": t["content"]} for t in ctx.earlier_turns()]
    current = {"role": "user", "content": ctx.message}

    def size() -> int:
        return sum(map(len, fixed)) + sum(map(len, rag)) + sum(len(t["content"]) for t in turns) + len(ctx.message)

    while size() > budget_chars and rag:
        rag.pop(0)
    while size() > budget_chars and turns:
        turns.pop(0)
    system = "\n\n".join([*fixed, *(["Business knowledge:\n" + "\n".join(rag)] if rag else [])])
    return [{"role": "system", "content": system}, *turns, current]
