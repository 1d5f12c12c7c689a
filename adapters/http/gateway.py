"""The HTTP gateway: widget, WebSocket, REST, sessions, health. Its
Prometheus metrics are served on METRICS_PORT (127.0.0.1), as every process's, never here."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
import uuid
from importlib import resources
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentstream.adapters.channels.rest import REST
from agentstream.adapters.channels.widget import WEBSOCKET
from agentstream.adapters.dynamo.credentials import issue_widget_token, refreshable_user, verify_widget_token, widget_token_id
from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.explain_routes import explain_routes
from agentstream.adapters.http.appointment_routes import appointment_routes
from agentstream.adapters.http.calendar_routes import calendar_routes
from agentstream.adapters.http.inbox_bookings import inbox_bookings_routes
from agentstream.adapters.http.facts_routes import facts_routes
from agentstream.adapters.http.handoff_routes import handoff_routes
from agentstream.adapters.http.inbox_routes import inbox_routes
from agentstream.adapters.http.media_routes import media_routes
from agentstream.adapters.http.common import (
    UNAUTHORIZED, Deps, HttpError, authenticate, bearer, client_address, origin_allowed, decode_utf8, deps, error, known_business,
    read_body, require_api_key,
)
from agentstream.adapters.ingest import InboundMessage
from agentstream.adapters.http.rate_limits import RateLimited
from agentstream.adapters.http.visitors import may_connect, new_token_id, revoke_visitor
from agentstream.adapters.http.openapi import document, operation
from agentstream.adapters.http.webhook_routes import webhook_routes
from agentstream.adapters.replies import DeliveryLog, pending_replies, reply_frame

log = structlog.get_logger(__name__)
MAX_TEXT = api.MAX_TEXT
API_VERSION = "1"
WIDGET_REFUSED = "widget token not valid; ask for a new visitor"
_CSP_SOURCE = re.compile(r"https?://[a-z0-9.-]+(:(\d{1,5}|\*))?", re.IGNORECASE)  # an origin, safe in a CSP


@operation("The chat page (the widget's frame)", answers={200: "an HTML page"}, tag="widget")
async def index(request: Request) -> Response:
    """The chat page; the business's allowed origins (and this gateway) may frame it (widget.js)."""
    page = resources.files("agentstream").joinpath("static/widget.html").read_text(encoding="utf-8")
    business_id = request.query_params.get("business", "")
    info = await deps(request).directory.info(business_id) if business_id else None
    allowed = ((info or {}).get("settings") or {}).get("allowedOrigins") or []
    ancestors = " ".join(["'self'", *(a for a in allowed if isinstance(a, str) and _CSP_SOURCE.fullmatch(a))])
    return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                                       "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                                       f"frame-ancestors {ancestors}"})


@operation("The widget's script a business's site includes", answers={200: "JavaScript"}, tag="widget")
async def widget_script(request: Request) -> Response:
    """The one script a business's site includes (`<script src=".../widget.js" data-business="B">`)."""
    script = resources.files("agentstream").joinpath("static/widget.js").read_text(encoding="utf-8")
    return Response(script, media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


@operation("Liveness", answers={200: api.Health}, tag="operations")
async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _visitor(d: Deps, keys: list[str], business_id: str, user_id: str) -> Response:
    token, expires = issue_widget_token(keys, business_id, user_id, d.settings.widget_token_ttl_s)
    return JSONResponse({"userId": user_id, "token": token, "expiresAt": expires})


def _issued(keys: list[str], business_id: str, user_id: str, token_id: str, expires: int) -> Response:
    token, _ = issue_widget_token(keys, business_id, user_id, 0, token_id=token_id, expires_at=expires)
    return JSONResponse({"userId": user_id, "token": token, "expiresAt": expires})


async def _recorded_visitor(d: Deps, keys: list[str], business_id: str, user_id: str) -> Response:
    """A new visitor's record and first token (never past its lifetime)."""
    assert d.visitors is not None
    now, token_id = int(time.time()), new_token_id()
    expires = now + min(d.settings.widget_token_ttl_s, d.visitors.lifetime_s)
    await d.visitors.create(business_id, user_id, token_id, expires, now)
    return _issued(keys, business_id, user_id, token_id, expires)


async def _rotated(d: Deps, keys: list[str], business_id: str, user_id: str, presented: str | None) -> Response:
    """The next token of a visitor for a refresh presenting token id `presented` (see adapters/http/visitors.py)."""
    assert d.visitors is not None
    now = int(time.time())
    visitor = await d.visitors.get(business_id, user_id)
    if visitor is None:  # a token from before records: its visitor gets one now; a recorded one lost it
        if presented is not None:
            raise HttpError(401, WIDGET_REFUSED)
        return await _recorded_visitor(d, keys, business_id, user_id)
    ends = d.visitors.ends_at(visitor)
    if visitor.revoked or now >= ends:
        raise HttpError(401, WIDGET_REFUSED)
    if presented is None or presented == visitor.token_id:
        token_id, expires = new_token_id(), min(now + d.settings.widget_token_ttl_s, ends)
        if await d.visitors.rotate(business_id, user_id, visitor.token_id, token_id, expires, now):
            return _issued(keys, business_id, user_id, token_id, expires)
        visitor = await d.visitors.get(business_id, user_id) or visitor  # another tab rotated it just now
    if presented is not None and presented == visitor.previous_token_id and now < visitor.previous_until:
        return _issued(keys, business_id, user_id, visitor.token_id, visitor.token_exp)  # the same new token
    raise HttpError(401, WIDGET_REFUSED)


@operation("A new anonymous visitor and its token", tag="widget", answers={
    200: api.Visitor, 403: api.Error, 404: api.Error, 429: api.Error},
    description="Public; a browser's Origin must be the gateway's or among the business's allowedOrigins (CORS).")
async def new_visitor(request: Request) -> Response:
    """A new anonymous visitor and its token (public)."""
    d = deps(request)
    business_id = request.path_params["businessId"]
    if d.limits:
        await d.limits.shared.hit(d.limits.visitors_per_address, client_address(request))
    info = await known_business(d, business_id)
    if not origin_allowed(d, request, info):
        raise HttpError(403, "this page's origin is not among the business's allowed origins")
    if d.limits:
        await d.limits.shared.hit(d.limits.visitors_per_business, business_id)
    keys = await d.credentials.widget_keys(business_id)
    if not keys:
        raise HttpError(404, f"business {business_id!r} has no widget configured")
    user_id = f"v-{uuid.uuid4().hex}"
    return await _recorded_visitor(d, keys, business_id, user_id) if d.visitors else _visitor(d, keys, business_id, user_id)


@operation("A new token for the same visitor", security="widgetToken", tag="widget",
           answers={200: api.Visitor, 403: api.Error})
async def refresh_visitor(request: Request) -> Response:
    """A new token for the same visitor in exchange for its old one (`Authorization: Bearer <token>`),
    also when that one expired (up to REFRESH_GRACE_S ago) or was signed by the previous key.
    A bad token and an unknown business get the same 401."""
    d = deps(request)
    business_id = request.path_params["businessId"]
    token = bearer(request, WIDGET_REFUSED)
    if not origin_allowed(d, request, await d.directory.info(business_id)):
        raise HttpError(403, "this page's origin is not among the business's allowed origins")
    keys = await d.credentials.widget_keys(business_id)
    user_id = refreshable_user(keys, token, business_id) if keys else None
    if user_id is None or await d.directory.info(business_id) is None:
        raise HttpError(401, WIDGET_REFUSED)
    if d.visitors is None:
        return _visitor(d, keys, business_id, user_id)
    return await _rotated(d, keys, business_id, user_id, widget_token_id(keys, token))


@operation("End a visitor: its tokens stop working, its sockets close", security="apiKey", tag="widget",
           answers={204: "revoked", 404: api.Error})
async def revoke_visitor_route(request: Request) -> Response:
    """The business ends a visitor (its API key): its tokens stop working, its sockets close (4403)."""
    d = deps(request)
    business_id, user_id = request.path_params["businessId"], request.path_params["userId"]
    await require_api_key(d, request, business_id)
    if not await revoke_visitor(d.visitors, d.hub, business_id, user_id, d.signals):
        raise HttpError(404, "unknown visitor")
    return Response(status_code=204)


class FrameRefused(Exception):
    """A frame this socket cannot take at all (binary, or JSON nested too deeply): close 1003."""


async def _receive_text(ws: WebSocket) -> str:
    """The next text frame; FrameRefused for a binary one."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise FrameRefused("binary frames are not accepted: send JSON text")
    return message["text"]


def _parse_frame(raw: str) -> tuple[str, str]:
    """(text, clientMessageId) of a message frame, or HttpError(400) saying what is wrong."""
    try:
        frame = json.loads(raw)
    except ValueError:
        raise HttpError(400, "frame is not JSON") from None
    except RecursionError:
        raise FrameRefused("frame nested too deeply") from None
    if not isinstance(frame, dict) or frame.get("type") != "message":
        raise HttpError(400, 'frame must be {"type":"message","text":…,"clientMessageId":…}')
    text, client_id = frame.get("text"), frame.get("clientMessageId")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise HttpError(400, f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128:
        raise HttpError(400, "clientMessageId must be a string of 1 to 128 characters")
    return text, client_id


AUTH_FRAME_WAIT_S = 10.0


async def _visitor_of(ws: WebSocket) -> tuple[str, str]:
    """(userId, token): from the first frame `{"type":"auth","userId":…,"token":…}`, or, for a
    transition period, from the URL (where proxies log it). ("", "") for neither."""
    user_id, token = ws.query_params.get("userId", ""), ws.query_params.get("token", "")
    if token:
        log.info("ws.token_in_url")  # the earlier form: still accepted, counted here
        return user_id, token
    try:
        frame = json.loads(await asyncio.wait_for(_receive_text(ws), AUTH_FRAME_WAIT_S))
    except (asyncio.TimeoutError, ValueError, RecursionError, FrameRefused):
        return "", ""
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return "", ""
    user_id, token = frame.get("userId"), frame.get("token")
    return (user_id, token) if isinstance(user_id, str) and isinstance(token, str) else ("", "")


@operation("The widget's socket (WebSocket upgrade)", tag="widget", answers={101: "switching to the WebSocket protocol"},
           description='First frame {"type":"auth","userId","token"}; then {"type":"message","text","clientMessageId"} '
                       'frames, each acknowledged {"type":"ack","clientMessageId","eventId"}; replies arrive as '
                       '{"type":"reply",…} frames. Closes: 4403 bad or expired token, 4429 too many messages, '
                       '1003 a frame it cannot take.')
async def websocket_endpoint(ws: WebSocket) -> None:
    d: Deps = ws.app.state.deps
    business_id = ws.path_params["businessId"]
    # accepted first: a refusal closes with a code the browser sees (a refused handshake shows as 1006)
    await ws.accept()
    try:
        user_id, token = await _visitor_of(ws)
    except WebSocketDisconnect:
        return
    keys = await d.credentials.widget_keys(business_id)
    info = await d.directory.info(business_id)
    if (not (keys and user_id and verify_widget_token(keys, token, business_id, user_id))
            or info is None or not origin_allowed(d, ws, info)
            or (d.visitors and not may_connect(d.visitors, await d.visitors.get(business_id, user_id), widget_token_id(keys, token)))):
        # an unknown business and a bad or expired token look the same: the widget refreshes its token
        await ws.close(code=4403, reason="bad or expired token")
        return
    stream = f"{business_id}#{user_id}"
    await d.hub.add(stream, ws)
    try:
        for reply in await pending_replies(d.store, stream, ws.query_params.get("after")):  # missed while away
            await d.hub.send_once(ws, reply_frame(reply))
            await DeliveryLog(d.store, d.heads).record(reply, "ReplyDelivered", {"externalId": None, "attempts": 1})
        frames = d.limits.socket_window() if d.limits else None
        while True:
            raw = await _receive_text(ws)
            if frames is not None:
                frames.hit()
            await _on_frame(d, ws, business_id, user_id, raw)
    except WebSocketDisconnect:
        pass
    except RateLimited as exc:  # the frame is not taken; the widget may reconnect after the wait
        await ws.close(code=4429, reason=f"too many messages: wait {exc.retry_after_s} s")
    except FrameRefused as exc:
        log.info("ws.frame_refused", reason=str(exc))
        await ws.close(code=1003, reason=str(exc))
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


@operation("A customer's message through the REST channel", body=api.InboundMessage, security="apiKey",
           answers={202: api.Appended, 200: "a duplicate of an earlier message: its eventId"})
async def post_message(request: Request) -> Response:
    d = deps(request)
    business_id = await authenticate(d, request)
    data = api.parse_body(api.InboundMessage, decode_utf8(await read_body(request, d.settings.max_body_bytes)))
    if data.businessId != business_id:
        raise HttpError(401, UNAUTHORIZED)
    result = await d.ingestor.ingest(
        InboundMessage(data.businessId, data.userId, REST.name, data.externalId, data.text, reply_to={"rest": "poll"})
    )
    status = 200 if result.duplicate else 202
    return JSONResponse({"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate}, status_code=status)


@operation("A customer's active session and its last messages", security="apiKey",
           answers={200: api.Session, 404: api.Error})
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


@operation("A session's messages", security="apiKey", answers={200: api.SessionMessages, 404: api.Error})
async def get_session_messages(request: Request) -> Response:
    d = deps(request)
    session = await _owned_session(d, request)
    return JSONResponse({"sessionId": session["sessionId"], "messages": await d.projections.session_messages(session["sessionId"])})


@operation("Resolve a session (appends SessionResolved once)", security="apiKey",
           answers={202: api.Appended, 404: api.Error, 409: api.Error})
async def resolve_session(request: Request) -> Response:
    d = deps(request)
    result = await d.owner.resolve(await _owned_session(d, request))
    return JSONResponse({"eventId": result["eventId"], "duplicate": result["duplicate"]}, status_code=202)


@operation("The analytics consumer's figures for one business", security="apiKey",
           answers={200: api.Analytics, 503: api.Error})
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
    log.info("http.refused", path=request.url.path[:200], status=exc.status, reason=exc.message[:200])
    response = error(exc.status, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    response.headers.update(exc.headers)
    return response


async def _too_deep(request: Request, exc: Exception) -> Response:
    """A body nested past the parser's recursion limit is a malformed body: 400, no traceback."""
    log.info("http.refused", path=request.url.path, status=400, reason="nested too deeply")
    return error(400, "body nested too deeply")


def _cors(handler: Any) -> Any:
    """A visitor route a business's own site may call from the browser: a preflight (OPTIONS) of an
    allowed origin gets 204 with the CORS headers, another 403; an answer to an allowed origin
    carries Access-Control-Allow-Origin (other origins are refused by the route itself)."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        d, origin = deps(request), request.headers.get("origin")
        if request.method == "OPTIONS":
            if not (origin and origin_allowed(d, request, await d.directory.info(request.path_params["businessId"]))):
                return error(403, "origin not allowed")
            return Response(status_code=204, headers={
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600",
                "Vary": "Origin"})
        try:
            response = await handler(request)
        except HttpError as exc:
            response = await _http_error(request, exc)
        if origin:
            response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        return response

    return wrapped


@operation("This document", answers={200: "the OpenAPI 3.1 document"}, tag="operations")
async def openapi_json(request: Request) -> Response:
    if not hasattr(request.app.state, "openapi"):
        request.app.state.openapi = document(request.app.routes, API_VERSION)
    return JSONResponse(request.app.state.openapi)


def create_app(d: Deps) -> Starlette:
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/openapi.json", openapi_json),
        Route("/widget.js", widget_script),
        Route("/v1/widget/{businessId}/visitors", _cors(new_visitor), methods=["POST", "OPTIONS"]),
        Route("/v1/widget/{businessId}/visitors/refresh", _cors(refresh_visitor), methods=["POST", "OPTIONS"]),
        Route("/v1/widget/{businessId}/visitors/{userId}/revoke", revoke_visitor_route, methods=["POST"]),
        WebSocketRoute("/ws/{businessId}", websocket_endpoint),
        Route("/v1/messages", post_message, methods=["POST"]),
        Route("/v1/businesses/{businessId}/users/{userId}/session", get_user_session),
        Route("/v1/sessions/{sessionId}/messages", get_session_messages),
        Route("/v1/sessions/{sessionId}/resolve", resolve_session, methods=["POST"]),
        Route("/v1/analytics/{businessId}", get_analytics),
        *webhook_routes(),
        *facts_routes(),
        *appointment_routes(),
        *calendar_routes(),
        *inbox_bookings_routes(),
        *explain_routes(),
        *handoff_routes(),
        *inbox_routes(),
        *media_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={HttpError: _http_error, RecursionError: _too_deep})
    app.state.deps = d
    return app
