"""The owner's inbox (`GET /inbox`): a server-rendered page over the same code paths as the
handoff API (the owner service, adapters/http/owner_service.py): take over, reply, release, resolve.

Sign-in takes the business's API key and a display name; the session is a signed cookie
(adapters/http/inbox_session.py) checked before any body is read, and every POST form carries the
session's CSRF token. Every page is rendered by jinja2 with autoescape on; a conversation (and
the list) update live over server-sent events, whose fragments are rendered the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http import api_models as api
from agentstream.adapters.http import inbox_data
from agentstream.adapters.http.openapi import operation
from agentstream.adapters.http.inbox_spend import month_spend
from agentstream.adapters.http.visitors import revoke_visitor
from agentstream.adapters.http.common import Deps, HttpError, business_of_key, client_address, decode_utf8, deps, read_body
from agentstream.adapters.http.inbox_session import (
    InboxSession, clear_session, csrf_ok, end_session, key_print, live, new_csrf, read_session, still_valid, write_session,
)
from agentstream.adapters.http.owner_service import MAX_AUTHOR, STATUSES

MAX_FORM = 32 * 1024
LIVE_POLL_S = 1.0  # an open conversation: one session read and one messages query a second
LIST_POLL_S = 3.0  # the list: a sessions query, then one messages query per listed conversation
LIVE_FOR_S = 300.0  # a live stream ends after this; the browser's EventSource reconnects
SIGN_IN_REFUSED = "That API key is not valid for any business."
_ENV = Environment(loader=PackageLoader("agentstream", "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)
_ENV.globals["labels"] = inbox_data.STATE_LABELS
_ENV.globals["kinds"] = inbox_data.KIND_LABELS
_ENV.filters["local"] = inbox_data.local_time


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _ENV.get_template(template).render(nonce=nonce, **context)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
           "img-src 'self'; media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": csp, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin"})


def _fragment(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


async def _signed_in(d: Deps, request: Request) -> InboxSession | None:
    session = read_session(d, request)
    return session if session is not None and await still_valid(d, session) else None


async def _form(d: Deps, request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the first value of each), at most MAX_FORM bytes."""
    body = decode_utf8(await read_body(request, min(d.settings.max_body_bytes, MAX_FORM)))
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _sign_in_page(d: Deps, session: InboxSession | None, error: str | None = None, status: int = 200,
                  name: str = "") -> HTMLResponse:
    fresh = InboxSession(session.csrf if session and not session.signed_in else new_csrf())
    response = _page("inbox_sign_in.html", status, csrf=fresh.csrf, error=error, name=name)
    if session is None or session.signed_in:
        write_session(d, response, fresh)
    return response


@operation("The inbox: the sign-in page, or the conversations (?status=…)", tag="inbox", html=True,
           answers={200: "an HTML page"})
async def inbox(request: Request) -> Response:
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        return _sign_in_page(d, read_session(d, request))
    wanted = request.query_params.get("status") or None
    if wanted is not None and wanted not in STATUSES:
        wanted = None
    rows = await inbox_data.conversations(d, session.business_id or "", wanted)
    spend = await month_spend(d.ddb, d.settings.tables.usage, d.settings.tables.events, session.business_id or "",
                              await d.directory.info(session.business_id or ""))
    return _page("inbox_list.html", session=session, rows=rows, wanted=wanted, statuses=STATUSES, spend=spend,
                 pending=await inbox_data.waiting_bookings(d, session.business_id or ""))


@operation("Sign in with the API key and a display name", form=api.SignInForm, tag="inbox", html=True,
           answers={303: "signed in: to /inbox", 400: "the page again, saying what is wrong",
                    401: "the page again: the key is not valid", 403: "the form expired", 429: api.Error})
async def sign_in(request: Request) -> Response:
    d = deps(request)
    before = read_session(d, request)
    form = await _form(d, request)
    if not csrf_ok(before, form.get("csrf")):
        return _sign_in_page(d, None, "The form expired: please sign in again.", 403)
    name = form.get("name", "").strip()
    if not name or len(name) > MAX_AUTHOR or not name.isprintable():
        return _sign_in_page(d, before, f"Give a display name of 1 to {MAX_AUTHOR} characters.", 400)
    api_key = form.get("apiKey", "").strip()
    if d.limits:  # before the key is checked: guessing is as limited as signing in
        await d.limits.shared.hit(d.limits.sign_in_per_address, client_address(request))
        await d.limits.shared.hit(d.limits.sign_in_per_business, api_key.rpartition(".")[0])
    business_id = await business_of_key(d, api_key)
    if business_id is None:
        return _sign_in_page(d, before, SIGN_IN_REFUSED, 401, name)
    response = RedirectResponse("/inbox", status_code=303)
    write_session(d, response, InboxSession(new_csrf(), business_id, name, await key_print(d, business_id),
                                            secrets.token_urlsafe(16)))
    return response


async def _checked_post(request: Request) -> tuple[Deps, InboxSession, dict[str, str]]:
    """The signed-in session (401 otherwise, before the body is read) and the form, whose CSRF
    token must be the session's (403)."""
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        raise HttpError(401, "not signed in")
    form = await _form(d, request)
    if not csrf_ok(session, form.get("csrf")):
        raise HttpError(403, "missing or wrong CSRF token")
    return d, session, form


@operation("Sign out (every live stream of the session ends)", form=api.InboxActionForm, security="inboxSession",
           tag="inbox", html=True, answers={303: "to /inbox", 403: "missing or wrong CSRF token"})
async def sign_out(request: Request) -> Response:
    d, session, _ = await _checked_post(request)
    await end_session(d, session)
    response = RedirectResponse("/inbox", status_code=303)
    clear_session(response)
    return response


async def _conversation_page(d: Deps, session: InboxSession, session_id: str, error: str | None = None,
                             status: int = 200, draft: str = "") -> Response:
    found = await d.owner.owned_session(session.business_id or "", session_id)
    convo = await inbox_data.conversation(d, found)
    await inbox_data.views(d).opened(session.business_id or "", session_id, session.name or "", convo.seen_seq)
    return _page("inbox_conversation.html", status, session=session, c=convo, error=error, draft=draft)


@operation("A conversation's page", security="inboxSession", tag="inbox", html=True,
           answers={200: "an HTML page", 303: "not signed in: to /inbox", 404: "unknown session"})
async def open_conversation(request: Request) -> Response:
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        return RedirectResponse("/inbox", status_code=303)
    return await _conversation_page(d, session, request.path_params["sessionId"])


ACTIONS = ("take-over", "reply", "release", "resolve", "block-visitor")


@operation("take-over, reply, release, resolve or block-visitor", form=api.InboxActionForm, security="inboxSession",
           tag="inbox", html=True, answers={303: "done: back to the conversation", 403: "missing or wrong CSRF token",
                                            404: "unknown session or action", 409: "the page with the refusal",
                                            422: "the page with the refusal, the draft kept"})
async def act(request: Request) -> Response:
    """take-over, reply, release or resolve; then back to the conversation (303), or the page
    again with the refusal (e.g. 422 outside WhatsApp's 24-hour window) and the draft kept."""
    d, session, form = await _checked_post(request)
    business_id, session_id, action = session.business_id or "", request.path_params["sessionId"], request.path_params["action"]
    if action not in ACTIONS:
        raise HttpError(404, "unknown action")
    if action == "block-visitor":  # a widget visitor: its tokens stop working, its sockets close
        owned = await d.owner.owned_session(business_id, session_id)
        if not await revoke_visitor(d.visitors, d.hub, business_id, owned["userId"], d.signals):
            raise HttpError(404, "not a widget visitor with a record")
        return RedirectResponse(f"/inbox/conversations/{session_id}", status_code=303)
    try:
        convo = await d.owner.active_session(business_id, session_id)
        if action == "take-over":
            await d.owner.hand_off(convo, f"taken over in the inbox by {session.name}")
        elif action == "reply":
            await d.owner.send_message(convo, form.get("text", ""), session.name or "")
        elif action == "release":
            await d.owner.release(convo, f"released in the inbox by {session.name}")
        else:
            await d.owner.resolve(convo, f"resolved in the inbox by {session.name}")
    except HttpError as exc:
        if exc.status == 404:
            raise
        return await _conversation_page(d, session, session_id, exc.message, exc.status, form.get("text", ""))
    return RedirectResponse(f"/inbox/conversations/{session_id}", status_code=303)


def _sse(produce: Callable[[], Awaitable[dict[str, str]]], request: Request, session: InboxSession,
         every_s: float = LIVE_POLL_S) -> StreamingResponse:
    """Server-sent events: `produce()` every `every_s`, sent when it changed; the stream ends when
    the session does (signed out here: at once; elsewhere, or the key rotated: at the next poll)."""
    d = deps(request)

    async def events() -> AsyncIterator[str]:
        last: dict[str, str] | None = None
        yield "retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        until = loop.time() + LIVE_FOR_S
        with live(session) as ended:
            while loop.time() < until and not await request.is_disconnected():
                if ended.is_set() or not await still_valid(d, session):
                    yield "event: signed-out\ndata: {}\n\n"
                    return
                current = await produce()
                if current != last:
                    yield f"data: {json.dumps(current)}\n\n"
                    last = current
                try:
                    await asyncio.wait_for(ended.wait(), every_s)
                except asyncio.TimeoutError:
                    pass

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@operation("A conversation's updates (server-sent events)", security="inboxSession", tag="inbox", html=True,
           answers={200: "text/event-stream of rendered fragments"})
async def live_conversation(request: Request) -> Response:
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        raise HttpError(401, "not signed in")
    business_id, reader = session.business_id or "", session.name or ""
    first = await d.owner.owned_session(business_id, request.path_params["sessionId"])

    shown = [-1]

    async def produce() -> dict[str, str]:
        convo = await inbox_data.conversation(d, await d.owner.owned_session(business_id, first["sessionId"]))
        if convo.seen_seq != shown[0]:  # the reader has now been shown these messages
            await inbox_data.views(d).opened(business_id, first["sessionId"], reader, convo.seen_seq)
            shown[0] = convo.seen_seq
        return {"messages": _fragment("inbox_messages.html", c=convo),
                "actions": _fragment("inbox_actions.html", c=convo, session=session)}

    return _sse(produce, request, session)


@operation("The list's updates (server-sent events)", security="inboxSession", tag="inbox", html=True,
           answers={200: "text/event-stream of rendered fragments"})
async def live_list(request: Request) -> Response:
    d = deps(request)
    session = await _signed_in(d, request)
    if session is None:
        raise HttpError(401, "not signed in")
    wanted = request.query_params.get("status")
    wanted = wanted if wanted in STATUSES else None

    async def produce() -> dict[str, str]:
        rows = await inbox_data.conversations(d, session.business_id or "", wanted)
        return {"rows": _fragment("inbox_rows.html", rows=rows),
                "pending": str(await inbox_data.waiting_bookings(d, session.business_id or ""))}

    return _sse(produce, request, session, LIST_POLL_S)


def _html_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An HttpError as a page (the inbox is read by people), not the API's JSON."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except HttpError as exc:
            page = _page("inbox_error.html", exc.status, code=exc.status, message=exc.message)
            page.headers.update(exc.headers)
            return page

    return wrapped


def inbox_routes() -> list[BaseRoute]:
    base = "/inbox/conversations/{sessionId}"
    routes = [("/inbox", inbox, "GET"), ("/inbox/live", live_list, "GET"), ("/inbox/sign-in", sign_in, "POST"),
              ("/inbox/sign-out", sign_out, "POST"), (base, open_conversation, "GET"),
              (base + "/live", live_conversation, "GET"), (base + "/{action}", act, "POST")]
    return [Route(path, _html_errors(handler), methods=[method]) for path, handler, method in routes]
