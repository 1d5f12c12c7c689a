"""The owner's bookings API, authenticated first like every /v1 route (the path's business must
be the key's):

- `GET /v1/businesses/{b}/appointments?from=&to=&status=` lists the appointments starting in the
  range (ISO dates are the business's local days, `to` included; default: the next 7 days).
- `POST /v1/businesses/{b}/appointments/{id}/confirm|decline|propose|cancel|no-show` (propose
  takes {"at": local ISO time}; decline and cancel an optional {"reason"}) appends the change;
  a refused move or a place taken meanwhile is 409 and nothing is appended.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http.common import HttpError, decode_utf8, deps, read_body, require_api_key

MAX_BODY = 4 * 1024


async def list_appointments(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    q = request.query_params
    rows = await d.bookings.list(business_id, q.get("from") or None, q.get("to") or None, q.get("status") or None)
    return JSONResponse({"businessId": business_id, "appointments": rows})


async def _body(request: Request) -> dict[str, Any]:
    raw = decode_utf8(await read_body(request, MAX_BODY)).strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise HttpError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "body must be a JSON object")
    return data


async def act(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    body = await _body(request)
    done = await d.bookings.act(business_id, request.path_params["appointmentId"], request.path_params["action"], body)
    return JSONResponse(done, status_code=202)


def appointment_routes() -> list[BaseRoute]:
    base = "/v1/businesses/{businessId}/appointments"
    return [Route(base, list_appointments, methods=["GET"]),
            Route(base + "/{appointmentId}/{action}", act, methods=["POST"])]
