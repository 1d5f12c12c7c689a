"""The owner's bookings API, authenticated first like every /v1 route (the path's business must
be the key's):

- `GET /v1/businesses/{b}/appointments?from=&to=&status=` lists the appointments starting in the
  range (ISO dates are the business's local days, `to` included; default: the next 7 days).
- `POST /v1/businesses/{b}/appointments/{id}/confirm|decline|propose|cancel|no-show` (propose
  takes {"at": local ISO time}; decline and cancel an optional {"reason"}) appends the change;
  a refused move or a place taken meanwhile is 409 and nothing is appended.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import decode_utf8, deps, read_body, require_api_key
from agentstream.adapters.http.openapi import operation

MAX_BODY = 4 * 1024


@operation("The appointments starting in a range (?from=&to= local days, ?status=)", security="apiKey",
           tag="bookings", answers={200: api.Appointments, 400: api.Error})
async def list_appointments(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    q = request.query_params
    rows = await d.bookings.list(business_id, q.get("from") or None, q.get("to") or None, q.get("status") or None)
    return JSONResponse({"businessId": business_id, "appointments": rows})


async def _body(request: Request) -> api.AppointmentAction:
    raw = decode_utf8(await read_body(request, MAX_BODY))
    return api.parse_body(api.AppointmentAction, raw if raw.strip() else "{}")


@operation("Confirm, decline, propose another time, cancel or mark a no-show", body=api.AppointmentAction,
           security="apiKey", tag="bookings", answers={202: api.AppointmentChanged, 400: api.Error, 404: api.Error, 409: api.Error})
async def act(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    body = await _body(request)
    done = await d.bookings.act(business_id, request.path_params["appointmentId"], request.path_params["action"],
                                 body.model_dump(exclude_defaults=True))
    return JSONResponse(done, status_code=202)


def appointment_routes() -> list[BaseRoute]:
    base = "/v1/businesses/{businessId}/appointments"
    return [Route(base, list_appointments, methods=["GET"]),
            Route(base + "/{appointmentId}/{action}", act, methods=["POST"])]
