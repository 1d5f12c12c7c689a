"""Optional model-based fact extraction (FACTS_MODEL_EXTRACTION, off by default; needs a real model).

After the worker has appended a new reply to an inbound message, it hands the message here: the
model reads the customer's facts from its text (as JSON, given the message's time and the
business's time zone so it can resolve "tomorrow at 10"), the answer is checked the way the facts
fold checks any outside value (`clean_value`; what it refuses is dropped, bad JSON is nothing),
and what is left is appended as one `FactsExtracted` event. Its eventId is derived from the
inbound's and its idempotency id is `facts:<inboundEventId>`, so a retry or a second worker
appends it once, and the log is asked before the model is. Replay folds the event from the log:
it never calls the model. A failing model call is logged and changes nothing (the reply is out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog

from agentstream import idempotency as keys
from agentstream import metrics
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.llm import Completion, OpenAIResponder, Responder
from agentstream.events import FACT_KINDS, MessageReceived, derive_id, new_event, utc_now
from agentstream.projections.facts import business_zone, clean_value
from agentstream.streams.spend import SpendMeter

log = structlog.get_logger(__name__)
MAX_FACTS = 20  # FactsExtracted holds at most this many
MAX_TEXT = 4000  # characters of the message sent to the model

SYSTEM_PROMPT = """You read one message a customer sent to a business and extract facts about the customer.
Answer with a JSON object only: {"facts": [{"kind": ..., "value": ...}, ...]}; {"facts": []} when there are none.
Kinds and values:
- "name": the customer's own name, as a string ("Ana Popescu").
- "phone": the customer's phone number, as a string, as written.
- "email": the customer's email address, as a string.
- "address": the customer's postal address or town, as a string.
- "language": the language the customer wants to be answered in, as an ISO 639-1 code ("ro", "en").
- "appointment": an appointment the customer asks for, {"at": "YYYY-MM-DDTHH:MM" (the business's local time) or "YYYY-MM-DD" (a day only), "service": string or null}. Resolve relative days and times ("tomorrow at 10") against the message's local time.
- "order": an order or booking reference the customer gives, {"ref": string}.
Only what the customer states about themselves in this message; never guess, never include the business's own details."""


class JsonModel(Protocol):
    async def complete_json(self, messages: list[dict[str, str]]) -> Completion: ...


def facts_key(inbound_event_id: str) -> str:
    """The idempotency id of the facts read from an inbound message."""
    return keys.facts(inbound_event_id)


def facts_event_id(inbound_event_id: str) -> str:
    return derive_id("facts", inbound_event_id)


def extraction_prompt(text: str, at: datetime, timezone: str) -> list[dict[str, str]]:
    """The messages asking for the facts of `text`, sent at `at` to a business in `timezone`."""
    local = at.astimezone(business_zone(timezone))
    when = f"{local.isoformat(timespec='minutes')} ({local.strftime('%A')}), business time zone {timezone or 'UTC'}"
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Message sent at {when}:\n{text[:MAX_TEXT]}"}]


def parse_facts(content: str, timezone: str) -> list[dict[str, Any]]:
    """The facts of a model's answer that the fold would hold, in order, without repeats; [] for
    anything that is not the asked-for JSON."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return []
    items = answer.get("facts") if isinstance(answer, dict) else answer
    found: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("kind") not in FACT_KINDS:
            continue
        value = clean_value(item["kind"], item.get("value"), timezone)
        fact = {"kind": item["kind"], "value": value}
        if value is not None and fact not in found:
            found.append(fact)
    return found[:MAX_FACTS]


class FactExtractor:
    """The worker's hook after a new reply: at most one model call and one FactsExtracted per inbound."""

    def __init__(self, store: EventStore, model: JsonModel, spend: SpendMeter | None = None) -> None:
        """`spend`: the budget check before the call and the spend its event adds (none: no ceiling)."""
        self._store = store
        self._model = model
        self._spend = spend

    async def __call__(self, inbound: MessageReceived, info: dict[str, Any]) -> None:
        """Never raises: a failure is logged and the conversation goes on."""
        try:
            await self._extract(inbound, info)
        except Exception as exc:  # the model, its answer's shape, the append: none may stop the worker
            metrics.MODEL_ERRORS.labels(kind=f"facts:{type(exc).__name__}").inc()
            log.warning("facts.extraction_failed", inboundEventId=inbound.eventId, error=type(exc).__name__,
                        detail=str(exc)[:200])

    async def _extract(self, inbound: MessageReceived, info: dict[str, Any]) -> None:
        key, timezone = facts_key(inbound.eventId), str(info.get("timezone", "UTC"))
        if not inbound.payload.content.strip() or await self._store.has(inbound.businessId, key):
            return
        if self._spend is not None and not await self._spend.allows(inbound.businessId, info, utc_now()):
            log.info("facts.budget_spent", inboundEventId=inbound.eventId)
            return
        answer = await self._model.complete_json(extraction_prompt(inbound.payload.content, inbound.occurredAt, timezone))
        facts = parse_facts(answer.content, timezone)
        usage = {"promptTokens": answer.prompt_tokens, "completionTokens": answer.completion_tokens}
        if not facts:
            log.info("facts.none_extracted", inboundEventId=inbound.eventId, answer=answer.content[:200])
            if not any(usage.values()):
                return  # nothing found and nothing spent: nothing to log (else the event records the spend)
        draft = new_event("FactsExtracted", event_id=facts_event_id(inbound.eventId), business_id=inbound.businessId,
                          user_id=inbound.userId, location_id=inbound.locationId, channel="system",
                          payload={"facts": facts, "model": answer.model, "sourceEventId": inbound.eventId, "usage": usage})
        side = self._spend.charges(draft, info) if self._spend is not None else []
        result = await (self._store.append_with(draft, side, external_id=key) if side else self._store.append(draft, external_id=key))
        if not result.duplicate:
            metrics.EVENTS_APPENDED.labels(type="FactsExtracted", channel="system").inc()
        log.info("facts.extracted", eventId=result.event.eventId, inboundEventId=inbound.eventId,
                 kinds=[f["kind"] for f in facts], duplicate=result.duplicate)


class ExtractionConfig(Protocol):
    @property
    def facts_model_extraction(self) -> bool: ...

    @property
    def openai_api_key(self) -> str | None: ...


def make_fact_extractor(settings: ExtractionConfig, store: EventStore, responder: Responder,
                        spend: SpendMeter | None = None) -> FactExtractor | None:
    """The extractor when FACTS_MODEL_EXTRACTION is on and a real model answers; None otherwise."""
    if not settings.facts_model_extraction:
        return None
    if not settings.openai_api_key or not isinstance(responder, OpenAIResponder):
        log.warning("facts.model_extraction_off", reason="FACTS_MODEL_EXTRACTION needs OPENAI_API_KEY")
        return None
    return FactExtractor(store, responder, spend)
