"""The owner's view of a customer's facts (the owner can see and fix them):
`GET /v1/businesses/{businessId}/users/{userId}/facts` reads `ai-agent-customer-facts`;
`PUT …/facts/{kind}` {"value"} appends `FactCorrected` and `DELETE …/facts/{kind}` appends
`FactRetracted` (source "owner", channel "system") to the customer's stream, where the facts fold
picks them up like any other event. Every route checks the API key first (the path's business
must be the key's); a value the fold could not hold is refused with 400 and nothing appended; an
optional `Idempotency-Key` header makes a retried PUT or DELETE append once. The reads and the
appends are the owner service's (adapters/http/owner_service.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import Deps, decode_utf8, deps, read_body, require_api_key
from agentstream.adapters.http.openapi import operation
from agentstream.adapters.http.owner_service import fact_kind

MAX_FACT_BODY = 8 * 1024


async def _customer(d: Deps, request: Request) -> tuple[str, str]:
    """(businessId, userId) of the path, once the API key is the business's."""
    business_id, user_id = request.path_params["businessId"], request.path_params["userId"]
    await require_api_key(d, request, business_id)
    return business_id, user_id


async def _body_value(d: Deps, request: Request) -> Any:
    body = decode_utf8(await read_body(request, min(d.settings.max_body_bytes, MAX_FACT_BODY)))
    return api.parse_body(api.FactValue, body).value


@operation("A customer's current facts", security="apiKey", tag="facts", answers={200: api.Facts})
async def get_facts(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    return JSONResponse(await d.owner.facts(business_id, user_id))


@operation("Correct a fact (appends FactCorrected)", body=api.FactValue, security="apiKey", tag="facts",
           answers={202: api.Appended, 404: api.Error})
async def put_fact(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    kind = fact_kind(request.path_params["kind"])
    value = await _body_value(d, request)
    appended = await d.owner.correct_fact(business_id, user_id, kind, value, request.headers.get("idempotency-key"))
    return JSONResponse(appended, status_code=202)


@operation("Retract a fact (appends FactRetracted)", security="apiKey", tag="facts",
           answers={202: api.Appended, 404: api.Error})
async def delete_fact(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = await _customer(d, request)
    appended = await d.owner.retract_fact(business_id, user_id, request.path_params["kind"],
                                          request.headers.get("idempotency-key"))
    return JSONResponse(appended, status_code=202)


def facts_routes() -> list[BaseRoute]:
    base = "/v1/businesses/{businessId}/users/{userId}/facts"
    return [
        Route(base, get_facts, methods=["GET"]),
        Route(base + "/{kind}", put_fact, methods=["PUT"]),
        Route(base + "/{kind}", delete_fact, methods=["DELETE"]),
    ]
