"""Handing a conversation to a person, over the business API (its key first, as every /v1 route):

- `POST /v1/sessions/{sessionId}/handoff` {"reason"?}: appends HandoffRequested (by "owner");
- `POST /v1/sessions/{sessionId}/owner-messages` {"text", "author"}: appends OwnerReplied, sent
  through the customer's channel (a conversation not yet handed off is handed off first); outside
  the channel's messaging window (WhatsApp, Messenger, Instagram: 24 hours): 422, nothing appended;
- `POST /v1/sessions/{sessionId}/release` {"reason"?}: appends HandoffReleased;
- `GET /v1/businesses/{businessId}/conversations?status=ai|waiting|human|resolved`.

The log decides (the conversation fold); these routes only parse and answer: the commands and
the list are the owner service's (adapters/http/owner_service.py), which the inbox uses too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import Deps, authenticate, decode_utf8, deps, read_body, require_api_key
from agentstream.adapters.http.openapi import operation

MAX_BODY = 32 * 1024
B = TypeVar("B", bound=api.Body)


async def _session(d: Deps, request: Request) -> dict[str, Any]:
    """The path's session, once the API key is its business's."""
    business_id = await authenticate(d, request)
    return await d.owner.active_session(business_id, request.path_params["sessionId"])


async def _json(d: Deps, request: Request, model: type[B]) -> B:
    """The body as `model` (an empty body is {} when the model requires no field)."""
    body = decode_utf8(await read_body(request, min(d.settings.max_body_bytes, MAX_BODY)))
    return api.parse_body(model, body if body.strip() else "{}")


@operation("Hand the conversation to a person (appends HandoffRequested)", body=api.HandoffRequest, security="apiKey",
           tag="handoff", answers={202: api.HandoffAnswer, 200: "already with a person: nothing appended",
                                   404: api.Error, 409: api.Error})
async def request_handoff(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, api.HandoffRequest)
    result = await d.owner.hand_off(session, body.reason)
    return JSONResponse(result, status_code=202 if "eventId" in result else 200)


@operation("The owner's message to the customer (appends OwnerReplied)", body=api.OwnerMessage, security="apiKey",
           tag="handoff", answers={202: api.Appended, 404: api.Error, 409: api.Error,
                                   422: "outside the channel's messaging window: nothing appended"})
async def owner_message(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, api.OwnerMessage)
    appended = await d.owner.send_message(session, body.text, body.author, request.headers.get("idempotency-key"))
    return JSONResponse({"sessionId": session["sessionId"], **appended}, status_code=202)


@operation("Give the conversation back to the AI (appends HandoffReleased)", body=api.Release, security="apiKey",
           tag="handoff", answers={202: api.HandoffAnswer, 404: api.Error, 409: api.Error})
async def release(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, api.Release)
    return JSONResponse(await d.owner.release(session, body.reason), status_code=202)


@operation("The business's conversations, by status (?status=ai|waiting|human|resolved)", security="apiKey",
           tag="handoff", answers={200: api.Conversations})
async def list_conversations(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    rows = await d.owner.conversations(business_id, request.query_params.get("status"))
    return JSONResponse({"businessId": business_id, "conversations": rows})


def handoff_routes() -> list[BaseRoute]:
    return [
        Route("/v1/sessions/{sessionId}/handoff", request_handoff, methods=["POST"]),
        Route("/v1/sessions/{sessionId}/owner-messages", owner_message, methods=["POST"]),
        Route("/v1/sessions/{sessionId}/release", release, methods=["POST"]),
        Route("/v1/businesses/{businessId}/conversations", list_conversations, methods=["GET"]),
    ]
