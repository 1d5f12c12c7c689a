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

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http.common import Deps, HttpError, authenticate, decode_utf8, deps, read_body, require_api_key

MAX_BODY = 32 * 1024


async def _session(d: Deps, request: Request) -> dict[str, Any]:
    """The path's session, once the API key is its business's."""
    business_id = await authenticate(d, request)
    return await d.owner.active_session(business_id, request.path_params["sessionId"])


async def _json(d: Deps, request: Request, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str]:
    """A JSON object body of strings with exactly these fields (an empty body is {} when none is required)."""
    body = decode_utf8(await read_body(request, min(d.settings.max_body_bytes, MAX_BODY)))
    if not body.strip() and not required:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise HttpError(400, "body is not JSON") from None
    allowed = set(required) | set(optional)
    if not isinstance(data, dict) or not set(required) <= set(data) <= allowed \
            or any(not isinstance(v, str) for v in data.values()):
        fields = ", ".join([*(f'"{f}"' for f in required), *(f'"{f}" (optional)' for f in optional)])
        raise HttpError(400, f"body must be a JSON object of strings: {fields}")
    return data


async def request_handoff(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, (), ("reason",))
    result = await d.owner.hand_off(session, body.get("reason", ""))
    return JSONResponse(result, status_code=202 if "eventId" in result else 200)


async def owner_message(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, ("text", "author"))
    appended = await d.owner.send_message(session, body["text"], body["author"], request.headers.get("idempotency-key"))
    return JSONResponse({"sessionId": session["sessionId"], **appended}, status_code=202)


async def release(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, (), ("reason",))
    return JSONResponse(await d.owner.release(session, body.get("reason", "")), status_code=202)


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
