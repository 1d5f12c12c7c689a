"""The owner's view of a customer's facts (issue 14, "the owner can see and fix them"):
`GET /v1/businesses/{businessId}/users/{userId}/facts` reads `ai-agent-customer-facts`;
`PUT …/facts/{kind}` {"value"} appends `FactCorrected` and `DELETE …/facts/{kind}` appends
`FactRetracted` (source "owner", channel "system") to the customer's stream, where the facts fold
picks them up like any other event. Every route checks the API key first (the path's business
must be the key's); a value the fold could not hold is refused with 400 and nothing appended; an
optional `Idempotency-Key` header makes a retried PUT or DELETE append once."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.dynamo import from_item, to_item
from agentstream.adapters.http_common import Deps, HttpError, decode_utf8, deps, read_body, require_api_key
from agentstream.events import FACT_KINDS, Event, new_event, stream_id, utc_now
from agentstream.projections.extraction import VALUE_LIMIT
from agentstream.projections.facts import LIMITS, apply_facts, clean_value, current_facts, empty_facts

MAX_FACT_BODY = 8 * 1024
MAX_IDEMPOTENCY_KEY = 128
UNKNOWN_CUSTOMER = "unknown customer"
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)*\.[a-z]{2,}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_VALUE_HINTS = {
    "phone": "a phone number (E.164, or national for the business's country)",
    "email": "an email address",
    "language": "a language code such as 'ro' or 'en'",
    "appointment": '{"at": ISO date or local date-time, "service": optional string}, not in the past',
    "order": 'an order reference, or {"ref": …}',
}


async def _customer(d: Deps, request: Request) -> tuple[str, str]:
    """(businessId, userId) of the path, once the API key is the business's."""
    business_id, user_id = request.path_params["businessId"], request.path_params["userId"]
    await require_api_key(d, request, business_id)
    return business_id, user_id


def _kind(request: Request) -> str:
    kind = request.path_params["kind"]
    if kind not in FACT_KINDS:
        raise HttpError(400, f"unknown fact kind {kind!r}; known: {', '.join(FACT_KINDS)}")
    return kind


async def _timezone(d: Deps, business_id: str) -> str:
    info = await d.directory.info(business_id) or {}
    return str(info.get("timezone") or "UTC")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HttpError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _refuse_value(kind: str) -> HttpError:
    hint = _VALUE_HINTS.get(kind, f"a non-empty string of at most {LIMITS.get(kind, VALUE_LIMIT)} characters")
    return HttpError(400, f"value is not a valid {kind}: expected {hint}")


def owner_value(kind: str, value: Any, timezone: str) -> Any:
    """The value as the fold will store it, or HttpError(400): what `clean_value` refuses, an
    unparseable phone (which the fold would keep as written), an email without a domain, an
    over-long text (which the fold would cut) and an appointment already past (which it ignores)."""
    if isinstance(value, str) and len(value.strip()) > LIMITS.get(kind, VALUE_LIMIT):
        raise HttpError(400, f"value over {LIMITS.get(kind, VALUE_LIMIT)} characters")
    cleaned = clean_value(kind, value, timezone)
    if cleaned is None or (kind == "email" and not _EMAIL.fullmatch(cleaned)) \
            or (kind == "language" and not _LANGUAGE.fullmatch(cleaned)):
        raise _refuse_value(kind)
    return cleaned


def _held_by_fold(event: Event, timezone: str) -> bool:
    """Whether the fold, applied to a customer with no facts, would make the event's fact current
    (it ignores an appointment over before the event)."""
    state = apply_facts(empty_facts(event.businessId, event.userId), event.with_seq(1), timezone)
    return any(f["kind"] == event.payload.kind for f in current_facts(state))  # type: ignore[union-attr]


async def _body_value(d: Deps, request: Request) -> Any:
    body = decode_utf8(await read_body(request, min(d.settings.max_body_bytes, MAX_FACT_BODY)))
    try:
        data = json.loads(body)
    except ValueError:
        raise HttpError(400, "body is not JSON") from None
    if not isinstance(data, dict) or "value" not in data or set(data) != {"value"}:
        raise HttpError(400, 'body must be {"value": …}')
    return data["value"]


async def _append(d: Deps, request: Request, event: Event, head: int) -> Response:
    """Append `event` (once per Idempotency-Key, if given); 202 {"eventId", "seq", "duplicate"}."""
    key = _idempotency_key(request)
    result = await d.store.append(event, external_id=None if key is None else f"owner-facts:{key}", head=head)
    if result.duplicate:
        first = result.event
        if (first.streamId, first.type, first.payload) != (event.streamId, event.type, event.payload):
            raise HttpError(422, "Idempotency-Key already used for another request")
    return JSONResponse({"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate},
                        status_code=202)


async def _head(d: Deps, business_id: str, user_id: str) -> int:
    """The customer's stream head; 404 for a customer with no events."""
    head = await d.store.head(stream_id(business_id, user_id))
    if head == 0:
        raise HttpError(404, UNKNOWN_CUSTOMER)
    return head


async def get_facts(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    resp = await d.ddb.get_item(TableName=d.settings.tables.facts,
                                Key=to_item({"businessId": business_id, "userId": user_id}), ConsistentRead=True)
    if "Item" not in resp:
        raise HttpError(404, UNKNOWN_CUSTOMER)
    return JSONResponse(facts_view(from_item(resp["Item"]), utc_now()))


def facts_view(state: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The answer of GET …/facts: the facts current now; per kind, those that ended (superseded,
    retracted, or an appointment whose time has passed)."""
    current = current_facts(state, now)
    kept = {id(f) for f in current}
    superseded: dict[str, list[dict[str, Any]]] = {}
    for kind, entry in sorted(state.get("facts", {}).items()):
        lapsed = [f for f in entry.get("current", []) if id(f) not in kept]
        ended = [*entry.get("superseded", []), *lapsed]
        if ended:
            superseded[kind] = ended
    return {"businessId": state["businessId"], "userId": state["userId"], "facts": current,
            "superseded": superseded, "asOfSeq": int(state.get("lastSeq", 0))}


async def put_fact(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    kind = _kind(request)
    timezone = await _timezone(d, business_id)
    value = owner_value(kind, await _body_value(d, request), timezone)
    try:
        event = new_event("FactCorrected", business_id=business_id, user_id=user_id, channel="system",
                          payload={"kind": kind, "value": value, "source": "owner"})
    except ValidationError:
        raise _refuse_value(kind) from None
    if not _held_by_fold(event, timezone):
        raise _refuse_value(kind)
    return await _append(d, request, event, await _head(d, business_id, user_id))


async def delete_fact(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    kind = _kind(request)
    head = await _head(d, business_id, user_id)
    event = new_event("FactRetracted", business_id=business_id, user_id=user_id, channel="system",
                      payload={"kind": kind, "source": "owner"})
    return await _append(d, request, event, head)


def facts_routes() -> list[BaseRoute]:
    base = "/v1/businesses/{businessId}/users/{userId}/facts"
    return [
        Route(base, get_facts, methods=["GET"]),
        Route(base + "/{kind}", put_fact, methods=["PUT"]),
        Route(base + "/{kind}", delete_fact, methods=["DELETE"]),
    ]
