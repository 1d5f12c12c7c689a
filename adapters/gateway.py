"""The HTTP gateway (DESIGN.md section 6): widget, WebSocket, REST, sessions, health, metrics."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentstream.adapters.channels.rest import REST
from agentstream.adapters.channels.widget import WEBSOCKET
from agentstream.adapters.credentials import issue_widget_token, refreshable_user, verify_widget_token
from agentstream.adapters.explain_routes import explain_routes
from agentstream.adapters.facts_routes import facts_routes
from agentstream.adapters.handoff_routes import handoff_routes
from agentstream.adapters.inbox_routes import inbox_routes
from agentstream.adapters.http_common import (
    UNAUTHORIZED, Deps, HttpError, authenticate, bearer, decode_utf8, deps, error, known_business, read_body,
    require_api_key,
)
from agentstream.adapters.ingest import InboundMessage
from agentstream.adapters.webhook_routes import webhook_routes
from agentstream.adapters.replies import DeliveryLog, pending_replies, reply_frame

log = structlog.get_logger(__name__)
MAX_TEXT = 16_000
WIDGET_REFUSED = "widget token not valid; ask for a new visitor"


async def index(request: Request) -> Response:
    page = resources.files("agentstream").joinpath("static/widget.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _visitor(d: Deps, keys: list[str], business_id: str, user_id: str) -> Response:
    token, expires = issue_widget_token(keys, business_id, user_id, d.settings.widget_token_ttl_s)
    return JSONResponse({"userId": user_id, "token": token, "expiresAt": expires})


async def new_visitor(request: Request) -> Response:
    """A new anonymous visitor and its token (public)."""
    d = deps(request)
    business_id = request.path_params["businessId"]
    await known_business(d, business_id)
    keys = await d.credentials.widget_keys(business_id)
    if not keys:
        raise HttpError(404, f"business {business_id!r} has no widget configured")
    return _visitor(d, keys, business_id, f"v-{uuid.uuid4().hex}")


async def refresh_visitor(request: Request) -> Response:
    """A new token for the same visitor in exchange for its old one (`Authorization: Bearer <token>`),
    also when that one expired (up to REFRESH_GRACE_S ago) or was signed by the previous key.
    A bad token and an unknown business get the same 401."""
    d = deps(request)
    business_id = request.path_params["businessId"]
    token = bearer(request, WIDGET_REFUSED)
    keys = await d.credentials.widget_keys(business_id)
    user_id = refreshable_user(keys, token, business_id) if keys else None
    if user_id is None or await d.directory.info(business_id) is None:
        raise HttpError(401, WIDGET_REFUSED)
    return _visitor(d, keys, business_id, user_id)


def _parse_frame(raw: str) -> tuple[str, str]:
    """(text, clientMessageId) of a message frame, or HttpError(400) saying what is wrong."""
    try:
        frame = json.loads(raw)
    except ValueError:
        raise HttpError(400, "frame is not JSON") from None
    if not isinstance(frame, dict) or frame.get("type") != "message":
        raise HttpError(400, 'frame must be {"type":"message","text":…,"clientMessageId":…}')
    text, client_id = frame.get("text"), frame.get("clientMessageId")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise HttpError(400, f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128:
        raise HttpError(400, "clientMessageId must be a string of 1 to 128 characters")
    return text, client_id


async def websocket_endpoint(ws: WebSocket) -> None:
    d: Deps = ws.app.state.deps
    business_id = ws.path_params["businessId"]
    user_id, token = ws.query_params.get("userId", ""), ws.query_params.get("token", "")
    keys = await d.credentials.widget_keys(business_id)
    if not (keys and user_id and verify_widget_token(keys, token, business_id, user_id)) or await d.directory.info(business_id) is None:
        # accepted only to close with a code the browser sees (a refused handshake shows as 1006);
        # an unknown business and a bad or expired token look the same: the widget refreshes its token
        await ws.accept()
        await ws.close(code=4403, reason="bad or expired token")
        return
    await ws.accept()
    stream = f"{business_id}#{user_id}"
    await d.hub.add(stream, ws)
    try:
        for reply in await pending_replies(d.store, stream, ws.query_params.get("after")):  # missed while away
            await d.hub.send_once(ws, reply_frame(reply))
            await DeliveryLog(d.store, d.heads).record(reply, "ReplyDelivered", {"externalId": None, "attempts": 1})
        while True:
            await _on_frame(d, ws, business_id, user_id, await ws.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        await d.hub.remove(stream, ws)


async def _on_frame(d: Deps, ws: WebSocket, business_id: str, user_id: str, raw: str) -> None:
    try:
        text, client_id = _parse_frame(raw)
    except HttpError as exc:
        await ws.send_json({"type": "error", "error": exc.message})
        return
    result = await d.ingestor.ingest(
        InboundMessage(business_id, user_id, WEBSOCKET.name, client_id, text, reply_to={"socket": "widget"})
    )
    await ws.send_json({"type": "ack", "clientMessageId": client_id, "eventId": result.event.eventId})


async def post_message(request: Request) -> Response:
    d = deps(request)
    business_id = await authenticate(d, request)
    body = decode_utf8(await read_body(request, d.settings.max_body_bytes))
    try:
        data = json.loads(body)
    except ValueError:
        raise HttpError(400, "body is not JSON") from None
    fields = ("businessId", "userId", "text", "externalId")
    if not isinstance(data, dict) or any(not isinstance(data.get(f), str) or not data.get(f) for f in fields):
        raise HttpError(400, f"body needs non-empty strings {', '.join(fields)}")
    if len(data["text"]) > MAX_TEXT:
        raise HttpError(400, f"text over {MAX_TEXT} characters")
    if data["businessId"] != business_id:
        raise HttpError(401, UNAUTHORIZED)
    result = await d.ingestor.ingest(
        InboundMessage(data["businessId"], data["userId"], REST.name, data["externalId"], data["text"], reply_to={"rest": "poll"})
    )
    status = 200 if result.duplicate else 202
    return JSONResponse({"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate}, status_code=status)


async def get_user_session(request: Request) -> Response:
    d = deps(request)
    business_id, user_id = request.path_params["businessId"], request.path_params["userId"]
    await require_api_key(d, request, business_id)
    session = await d.projections.active_session_of_user(business_id, user_id)
    if session is None:
        raise HttpError(404, "no active session")
    session["lastMessages"] = await d.projections.session_messages(session["sessionId"], limit=4)
    return JSONResponse(session)


async def _owned_session(d: Deps, request: Request) -> dict[str, Any]:
    """The path's session if it is the API key's business's; another business's session is as unknown as a missing one."""
    return await d.owner.owned_session(await authenticate(d, request), request.path_params["sessionId"])


async def get_session_messages(request: Request) -> Response:
    d = deps(request)
    session = await _owned_session(d, request)
    return JSONResponse({"sessionId": session["sessionId"], "messages": await d.projections.session_messages(session["sessionId"])})


async def resolve_session(request: Request) -> Response:
    d = deps(request)
    result = await d.owner.resolve(await _owned_session(d, request))
    return JSONResponse({"eventId": result["eventId"], "duplicate": result["duplicate"]}, status_code=202)


async def get_analytics(request: Request) -> Response:
    """The analytics consumer's figures for one business (its API key required)."""
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    if d.analytics is None or not d.analytics.running:
        raise HttpError(503, "analytics not running")
    return JSONResponse(d.analytics.snapshot(business_id))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    log.info("http.refused", path=request.url.path, status=exc.status, reason=exc.message)
    response = error(exc.status, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def create_app(d: Deps) -> Starlette:
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/v1/widget/{businessId}/visitors", new_visitor, methods=["POST"]),
        Route("/v1/widget/{businessId}/visitors/refresh", refresh_visitor, methods=["POST"]),
        WebSocketRoute("/ws/{businessId}", websocket_endpoint),
        Route("/v1/messages", post_message, methods=["POST"]),
        Route("/v1/businesses/{businessId}/users/{userId}/session", get_user_session),
        Route("/v1/sessions/{sessionId}/messages", get_session_messages),
        Route("/v1/sessions/{sessionId}/resolve", resolve_session, methods=["POST"]),
        Route("/v1/analytics/{businessId}", get_analytics),
        *webhook_routes(),
        *facts_routes(),
        *explain_routes(),
        *handoff_routes(),
        *inbox_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={HttpError: _http_error})
    app.state.deps = d
    return app
