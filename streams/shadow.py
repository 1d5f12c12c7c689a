"""Shadow replay: try a new prompt or model on past traffic before switching.

For each logged inbound of a business that got a reply, the reply's context is rebuilt as
`explain` rebuilds it (streams/explain.py: the log folded up to the inbound, the business data
in force then), the candidate system instructions and/or model are put in, and the candidate is
asked. Nothing is appended to the log and nothing is delivered: the pairs (old reply, new
reply) go to `agent.shadow.v1` and into a report. At most `concurrency` inbounds are in flight
and at most `max_calls` model calls are made, whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from agentstream.adapters.llm import Answer, OfflineResponder, Responder
from agentstream.events import UnknownSchemaVersion, iso, stream_id
from agentstream.projections.context import ReplyContext
from agentstream.projections.kinds import kind_needs_reply
from agentstream.streams.reply_policy import HANDOFF_MODEL, reply_key
from agentstream.streams.explain import ExplainConfig, Explainer, NotExplainable
from agentstream.streams.ports import EventLog, VersionedDirectory

ASKED, NOT_ASKED, FAILED = "asked", "not asked: --max-calls reached", "not rebuilt"
HANDOFF_NOTICE = "not asked: the reply was the handoff notice"  # the worker's, not the model's
# USD per million tokens (input, output), list prices; a model is priced by its longest known
# prefix (gpt-4o-mini-2024-07-18 as gpt-4o-mini). Others: `--prices FILE`, or "unknown".
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "offline": (0.0, 0.0),
}
Prices = dict[str, tuple[float, float]]


class ShadowError(Exception):
    """Something the person running `shadow` can fix (one line); nothing was asked or written."""


@dataclass(frozen=True)
class ShadowOptions:
    business: str
    since: datetime | None = None
    limit: int = 100
    model: str | None = None  # None: the configured model
    instructions: str | None = None  # None: the instructions each reply used
    instructions_file: str | None = None
    max_calls: int | None = None
    concurrency: int = 4
    prices: Prices = field(default_factory=lambda: dict(DEFAULT_PRICES))


@dataclass(frozen=True)
class Inbound:
    """A logged customer message that got a reply, as the messages index found it."""

    eventId: str
    streamId: str
    seq: int
    occurredAt: str
    content: str


@dataclass(frozen=True)
class Side:
    """One reply of a pair: the logged one or the candidate's."""

    content: str
    model: str
    latencyMs: int
    fallback: bool
    promptTokens: int
    completionTokens: int
    costUsd: float | None  # None: the model's price is unknown
    eventId: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"eventId": self.eventId, "content": self.content, "length": len(self.content), "model": self.model,
                "latencyMs": self.latencyMs, "fallback": self.fallback, "promptTokens": self.promptTokens,
                "completionTokens": self.completionTokens, "costUsd": self.costUsd}


@dataclass(frozen=True)
class Rebuilt:
    """An inbound's reply context as `explain` rebuilds it, with the logged reply."""

    context: ReplyContext
    old: Side
    reproduced: bool
    differences: list[str]


@dataclass(frozen=True)
class Pair:
    inbound: Inbound
    status: str
    old: Side | None = None
    new: Side | None = None
    reproduced: bool | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        i = self.inbound
        return {"streamId": i.streamId, "inbound": {"eventId": i.eventId, "seq": i.seq, "occurredAt": i.occurredAt,
                                                    "content": i.content, "length": len(i.content)},
                "status": self.status, "detail": self.detail, "reproduced": self.reproduced,
                "old": self.old.to_json() if self.old else None, "new": self.new.to_json() if self.new else None}


class CallBudget:
    """A hard cap on model calls: `take()` before each call, False once `limit` were taken.
    It has no await, so concurrent tasks of one event loop cannot both take the last call."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self.taken = 0

    @property
    def spent(self) -> bool:
        return self._limit is not None and self.taken >= self._limit

    def take(self) -> bool:
        if self.spent:
            return False
        self.taken += 1
        return True


def price_of(model: str, prices: Prices) -> tuple[float, float] | None:
    """The (input, output) USD per million tokens of `model`: its own, or its longest priced prefix."""
    if model in prices:
        return prices[model]
    known = [name for name in prices if model.startswith(name + "-")]
    return prices[max(known, key=len)] if known else None


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int, prices: Prices) -> float | None:
    price = price_of(model, prices)
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)


def parse_prices(data: Any) -> Prices:
    """`{"model": {"input": USD per 1M tokens, "output": …}, …}` (from `--prices FILE`); ShadowError if not."""
    if not isinstance(data, dict):
        raise ShadowError('prices: expected {"model": {"input": USD per 1M tokens, "output": USD per 1M tokens}}')
    prices: Prices = {}
    for model, price in data.items():
        try:
            prices[str(model)] = (float(price["input"]), float(price["output"]))
        except (TypeError, KeyError, ValueError):
            raise ShadowError(f"prices: {model!r} needs numbers \"input\" and \"output\" (USD per 1M tokens)") from None
        if min(prices[str(model)]) < 0:
            raise ShadowError(f"prices: {model!r} has a negative price")
    return prices


Rebuild = Callable[[Inbound], Awaitable[Rebuilt]]
Sink = Callable[[Pair], Awaitable[None]]


class Shadow:
    """Asks the candidate for each inbound's reply, `concurrency` at a time, within the budget."""

    def __init__(self, rebuild: Rebuild, responder: Responder, budget: CallBudget, prices: Prices,
                 instructions: str | None = None, concurrency: int = 4, sink: Sink | None = None) -> None:
        self._rebuild = rebuild
        self._responder = responder
        self._budget = budget
        self._prices = prices
        self._instructions = instructions
        self._slots = asyncio.Semaphore(concurrency)
        self._sink = sink

    async def run(self, inbounds: Sequence[Inbound], progress: Callable[[int], None] | None = None) -> list[Pair]:
        """One pair per inbound, in the order given (status says whether the candidate was asked)."""

        async def one(inbound: Inbound) -> Pair:
            async with self._slots:
                pair = await self._pair(inbound)
                if self._sink and pair.new is not None:
                    await self._sink(pair)
            if progress:
                progress(1)
            return pair

        return list(await asyncio.gather(*(one(i) for i in inbounds)))

    async def _pair(self, inbound: Inbound) -> Pair:
        if self._budget.spent:  # no call left: not even the context is rebuilt
            return Pair(inbound, NOT_ASKED)
        try:
            rebuilt = await self._rebuild(inbound)
        except (NotExplainable, UnknownSchemaVersion) as exc:
            return Pair(inbound, FAILED, detail=str(exc))
        if rebuilt.old.model == HANDOFF_MODEL:  # no prompt made that reply: nothing to compare
            return Pair(inbound, HANDOFF_NOTICE, rebuilt.old, reproduced=rebuilt.reproduced)
        if not self._budget.take():  # another task took the last call meanwhile
            return Pair(inbound, NOT_ASKED, rebuilt.old, reproduced=rebuilt.reproduced)
        ctx = rebuilt.context if self._instructions is None else replace(rebuilt.context, system_instructions=self._instructions)
        answer = await self._responder.answer(ctx)
        detail = "" if rebuilt.reproduced else "; ".join(rebuilt.differences)
        return Pair(inbound, ASKED, rebuilt.old, self._side(answer), rebuilt.reproduced, detail)

    def _side(self, answer: Answer) -> Side:
        return Side(answer.content, answer.model, answer.latency_ms, answer.fallback, answer.prompt_tokens,
                    answer.completion_tokens, cost_usd(answer.model, answer.prompt_tokens, answer.completion_tokens, self._prices))


def explainer_rebuild(explainer: Explainer, business_id: str, prices: Prices) -> Rebuild:
    """Rebuild an inbound's context with `explain`'s own code, and its logged reply as a Side."""

    async def rebuild(inbound: Inbound) -> Rebuilt:
        found = await explainer.explain(inbound.eventId, business_id)
        if found.reply is None:
            raise NotExplainable(f"the message {inbound.eventId!r} has no reply in the log")
        r = found.reply.payload
        old = Side(r.content, r.model, r.latencyMs, r.fallback, r.usage.promptTokens, r.usage.completionTokens,
                   cost_usd(r.model, r.usage.promptTokens, r.usage.completionTokens, prices), found.reply.eventId)
        return Rebuilt(found.context, old, found.reproduced, found.differences())

    return rebuild


class ShadowConfig(ExplainConfig, Protocol):
    @property
    def openai_model(self) -> str: ...


BusinessMessages = Callable[[str, str | None], AsyncIterator[dict[str, Any]]]


@dataclass(frozen=True)
class ShadowStores:
    """What `shadow` reads: the log, the business data with its history (as `explain`), and
    `messages(business, since)`, a business's customer messages newest first through the
    messages index (`adapters/dynamo/business_messages.customer_messages`)."""

    log: EventLog
    directory: VersionedDirectory
    messages: BusinessMessages


async def select_inbounds(store: EventLog, messages: BusinessMessages, business_id: str, since: datetime | None,
                          limit: int, chunk: int = 25) -> list[Inbound]:
    """The business's latest `limit` customer messages (from `since`) that got a reply, oldest
    first: found through the messages index (kinds never answered left out), a reply checked by
    its idempotency record."""
    found: list[Inbound] = []
    batch: list[dict[str, Any]] = []

    async def check() -> None:
        answered = await asyncio.gather(*(store.has(business_id, reply_key(m["messageId"])) for m in batch))
        found.extend(_inbound(business_id, m) for m, yes in zip(batch, answered) if yes)
        batch.clear()

    async for message in messages(business_id, iso(since) if since else None):
        if not kind_needs_reply(str((message.get("metadata") or {}).get("kind", "text"))):
            continue  # a reaction, a location without text, …: never answered, nothing to compare
        batch.append(message)
        if len(batch) >= chunk:
            await check()
            if len(found) >= limit:
                break
    if batch and len(found) < limit:
        await check()
    return sorted(found[:limit], key=lambda i: (i.occurredAt, i.streamId, i.seq))


def _inbound(business_id: str, message: dict[str, Any]) -> Inbound:
    return Inbound(str(message["messageId"]), stream_id(business_id, str(message["userId"])), int(message.get("seq", 0)),
                   str(message.get("timestamp", "")), str(message.get("content", "")))


def run_meta(settings: ShadowConfig, options: ShadowOptions, responder: Responder, topic: str) -> dict[str, Any]:
    """What this run tried, for the report and each record on the topic."""
    text = options.instructions
    notes = []
    if isinstance(responder, OfflineResponder):
        notes.append("no OPENAI_API_KEY: the offline responder answered (it does not read the instructions"
                     + (" nor use --model" if options.model else "") + ")")
    return {
        "runId": str(uuid.uuid4()), "business": options.business, "topic": topic, "startedAt": iso(datetime.now(timezone.utc)),
        "since": iso(options.since) if options.since else None, "limit": options.limit, "maxCalls": options.max_calls,
        "concurrency": options.concurrency,
        "candidate": {"model": "offline" if isinstance(responder, OfflineResponder) else options.model or settings.openai_model,
                      "instructionsFile": options.instructions_file,
                      "instructionsSha256": hashlib.sha256(text.encode()).hexdigest() if text is not None else None,
                      "instructions": text},
        "notes": notes,
    }


async def shadow(stores: ShadowStores, settings: ShadowConfig, options: ShadowOptions, responder: Responder, sink: Sink,
                 progress: Callable[[int, int], None] | None = None) -> list[Pair]:
    """Run the shadow replay of `options`: one pair per inbound found. `progress` is called
    with (done, total)."""
    if await stores.directory.info(options.business) is None:
        raise ShadowError(f"unknown business {options.business!r} (no business info)")
    inbounds = await select_inbounds(stores.log, stores.messages, options.business, options.since, options.limit)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, len(inbounds))

    if progress:
        progress(0, len(inbounds))
    runner = Shadow(explainer_rebuild(Explainer(stores.log, stores.directory, settings), options.business, options.prices), responder,
                    CallBudget(options.max_calls), options.prices, options.instructions, options.concurrency, sink)
    return await runner.run(inbounds, advance)


def report_paths(out: Path) -> tuple[Path, Path]:
    """The HTML and JSON files of a report (same basename)."""
    return out.with_suffix(".html"), out.with_suffix(".json")
