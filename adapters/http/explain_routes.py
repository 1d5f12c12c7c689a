"""`GET /v1/replies/{eventId}/explain`: why this reply, for the business that owns it (its API
key first; a reply of another business is the same 404 as a missing one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import HttpError, authenticate, deps
from agentstream.adapters.http.openapi import operation


@operation("Why this reply: its context and prompt rebuilt from the log", security="apiKey", tag="explain",
           answers={200: api.Explanation, 404: api.Error, 503: api.Error})
async def explain_reply(request: Request) -> Response:
    d = deps(request)
    business_id = await authenticate(d, request)
    if d.explainer is None:
        raise HttpError(503, "explain is not available in this process")
    try:
        found = await d.explainer.explain(request.path_params["eventId"], business_id)
    except LookupError:
        raise HttpError(404, "no such reply") from None
    return JSONResponse(found.to_json())


def explain_routes() -> list[BaseRoute]:
    return [Route("/v1/replies/{eventId}/explain", explain_reply)]
