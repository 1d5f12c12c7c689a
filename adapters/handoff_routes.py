"""Handing a conversation to a person, over the business API (its key first, as every /v1 route):

- `POST /v1/sessions/{sessionId}/handoff` {"reason"?}: appends HandoffRequested (by "owner");
- `POST /v1/sessions/{sessionId}/owner-messages` {"text", "author"}: appends OwnerReplied, sent
  through the customer's channel (a conversation not yet handed off is handed off first); outside
  the channel's messaging window (WhatsApp, Messenger, Instagram: 24 hours): 422, nothing appended;
- `POST /v1/sessions/{sessionId}/release` {"reason"?}: appends HandoffReleased;
- `GET /v1/businesses/{businessId}/conversations?status=ai|waiting|human|resolved`.

The log decides (the conversation fold); these routes only append. The state they read (the
session and the customer's memory item) is the worker's projection, a moment behind the log.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream import channel_specs
from agentstream.adapters.business import handoff_timeout_minutes
from agentstream.adapters.channels.rest import REST
from agentstream.adapters.dynamo import query_all, to_item
from agentstream.adapters.http_common import Deps, HttpError, authenticate, decode_utf8, deps, read_body, require_api_key
from agentstream.adapters.tables import SESSIONS_GSI
from agentstream.events import Event, new_event, utc_now
from agentstream.projections.handoff import OWNER_REPLIED, status_of

MAX_BODY = 32 * 1024
MAX_TEXT = 4_000
MAX_AUTHOR = 100
MAX_LIST = 500
STATUSES = ("ai", "waiting", "human", "resolved")


async def _session(d: Deps, request: Request) -> dict[str, Any]:
    """The path's session, once the API key is its business's."""
    business_id = await authenticate(d, request)
    return await active_session(d, business_id, request.path_params["sessionId"])


async def owned_session(d: Deps, business_id: str, session_id: str) -> dict[str, Any]:
    """The business's session; another business's session is as unknown as a missing one (404)."""
    session = await d.projections.session(session_id)
    if session is None or session.get("businessId") != business_id:
        raise HttpError(404, "unknown session")
    return session


async def active_session(d: Deps, business_id: str, session_id: str) -> dict[str, Any]:
    """The business's session (404 otherwise); 409 once it ended."""
    session = await owned_session(d, business_id, session_id)
    if session.get("status") != "active":
        raise HttpError(409, f"the session is {session.get('status')}: it can no longer be handed over")
    return session


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


async def _timeout(d: Deps, business_id: str) -> int:
    return handoff_timeout_minutes(await d.directory.info(business_id))


def _status(session: dict[str, Any], timeout: int) -> str:
    return status_of(session, utc_now(), timeout)


async def _append(d: Deps, event: Event, external_id: str | None = None) -> dict[str, Any]:
    result = await d.store.append(event, external_id=external_id)
    return {"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate}


def _handoff_event(session: dict[str, Any], reason: str) -> Event:
    return new_event("HandoffRequested", business_id=session["businessId"], user_id=session["userId"], channel="system",
                     payload={"sessionId": session["sessionId"], "by": "owner", "reason": reason[:500]})


async def hand_off(d: Deps, session: dict[str, Any], reason: str) -> dict[str, Any]:
    """HandoffRequested by the owner, unless the conversation is already with a person (then
    {"status", "duplicate": True} and nothing appended)."""
    status = _status(session, await _timeout(d, session["businessId"]))
    if status in ("waiting", "human"):
        return {"sessionId": session["sessionId"], "status": status, "duplicate": True}
    appended = await _append(d, _handoff_event(session, reason))
    return {"sessionId": session["sessionId"], "status": "waiting", **appended}


async def request_handoff(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, (), ("reason",))
    result = await hand_off(d, session, body.get("reason", ""))
    return JSONResponse(result, status_code=202 if "eventId" in result else 200)


def window_refusal(channel: str, last_inbound_at: str | None, now: datetime) -> str | None:
    """Why a free-text message cannot be sent on `channel` now (its messaging window has closed
    since the customer's last message), or None."""
    hours = channel_specs.window_hours(channel)
    if hours is None:
        return None
    name = channel_specs.title(channel)
    if last_inbound_at is None:
        return f"outside {name}'s {hours}-hour customer-service window: the customer has not written in this session"
    last = datetime.fromisoformat(last_inbound_at.replace("Z", "+00:00"))
    if now - last <= timedelta(hours=hours):
        return None
    return (f"outside {name}'s {hours}-hour customer-service window: the customer last wrote at {last_inbound_at}; "
            f"a free-text message can only be sent within {hours} hours of it")


async def _last_inbound(d: Deps, session: dict[str, Any]) -> dict[str, Any]:
    """The channel, addressing and time of the customer's last message in this session."""
    memory = await d.projections.load_memory(session["businessId"], session["userId"]) or {}
    ctx = memory.get("sessionContext") or {}
    if ctx.get("sessionId") != session["sessionId"] or not ctx.get("lastInbound"):
        channel = ((session.get("metadata") or {}).get("context") or {}).get("channel") or REST.name
        return {"channel": channel, "replyTo": {}, "at": None}
    return ctx["lastInbound"]


def _text(body: dict[str, str]) -> tuple[str, str]:
    text, author = body["text"].strip(), body["author"].strip()
    if not text or len(text) > MAX_TEXT:
        raise HttpError(400, f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if not author or len(author) > MAX_AUTHOR or not author.isprintable():
        raise HttpError(400, f"author must be a display name of 1 to {MAX_AUTHOR} printable characters")
    return text, author


async def owner_message(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, ("text", "author"))
    appended = await send_owner_message(d, session, body["text"], body["author"], request.headers.get("idempotency-key"))
    return JSONResponse({"sessionId": session["sessionId"], **appended}, status_code=202)


async def send_owner_message(d: Deps, session: dict[str, Any], text: str, author: str,
                             key: str | None = None) -> dict[str, Any]:
    """OwnerReplied through the customer's last channel (a conversation with the AI is handed off
    first); 400 for a bad text, author or key, 422 outside the vendor's 24-hour window."""
    text, author = _text({"text": text, "author": author})
    last = await _last_inbound(d, session)
    refusal = window_refusal(last["channel"], last.get("at"), utc_now())
    if refusal:
        raise HttpError(422, refusal)
    if key is not None and not 1 <= len(key.strip()) <= 128:
        raise HttpError(400, "Idempotency-Key must be 1 to 128 characters")
    if _status(session, await _timeout(d, session["businessId"])) == "ai":
        await _append(d, _handoff_event(session, OWNER_REPLIED))  # the fold ignores it if one is in flight
    event = new_event("OwnerReplied", business_id=session["businessId"], user_id=session["userId"],
                      channel=last["channel"], payload={"sessionId": session["sessionId"], "content": text,
                                                        "author": author, "deliverTo": dict(last.get("replyTo") or {})})
    return await _append(d, event, None if key is None else f"owner-message:{key.strip()}")


async def release_conversation(d: Deps, session: dict[str, Any], reason: str) -> dict[str, Any]:
    """HandoffReleased by the owner: the AI answers again."""
    event = new_event("HandoffReleased", business_id=session["businessId"], user_id=session["userId"], channel="system",
                      payload={"sessionId": session["sessionId"], "by": "owner", "reason": reason[:500]})
    return {"sessionId": session["sessionId"], "status": "ai", **await _append(d, event)}


async def release(request: Request) -> Response:
    d = deps(request)
    session = await _session(d, request)
    body = await _json(d, request, (), ("reason",))
    return JSONResponse(await release_conversation(d, session, body.get("reason", "")), status_code=202)


async def resolve_conversation(d: Deps, session: dict[str, Any], reason: str = "resolved through the API") -> dict[str, Any]:
    """SessionResolved (once per session: a second resolve is a duplicate)."""
    event = new_event("SessionResolved", business_id=session["businessId"], user_id=session["userId"], channel="system",
                      payload={"sessionId": session["sessionId"], "reason": reason})
    return await _append(d, event, external_id=f"resolve:{session['sessionId']}")


def conversation_view(session: dict[str, Any], timeout: int, now: datetime) -> dict[str, Any]:
    """One row of the conversations list."""
    context = (session.get("metadata") or {}).get("context") or {}
    return {
        "sessionId": session["sessionId"], "userId": session["userId"], "status": status_of(session, now, timeout),
        "sessionStatus": session.get("status"), "channel": context.get("channel"),
        "messageCount": int(context.get("messageCount", 0)), "lastMessageAt": session.get("lastMessageAt"),
        "createdAt": session.get("createdAt"), "handoff": session.get("handoff"),
    }


async def list_conversations(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    await require_api_key(d, request, business_id)
    wanted = request.query_params.get("status")
    if wanted is not None and wanted not in STATUSES:
        raise HttpError(400, f"status must be one of {', '.join(STATUSES)}")
    sessions = await query_all(d.ddb, TableName=d.settings.tables.sessions, IndexName=SESSIONS_GSI,
                               KeyConditionExpression="businessId = :b", ExpressionAttributeValues=to_item({":b": business_id}))
    timeout, now = await _timeout(d, business_id), utc_now()
    rows = [conversation_view(s, timeout, now) for s in sessions]
    rows = sorted((r for r in rows if wanted is None or r["status"] == wanted),
                  key=lambda r: r["lastMessageAt"] or "", reverse=True)
    return JSONResponse({"businessId": business_id, "conversations": rows[:MAX_LIST]})


def handoff_routes() -> list[BaseRoute]:
    return [
        Route("/v1/sessions/{sessionId}/handoff", request_handoff, methods=["POST"]),
        Route("/v1/sessions/{sessionId}/owner-messages", owner_message, methods=["POST"]),
        Route("/v1/sessions/{sessionId}/release", release, methods=["POST"]),
        Route("/v1/businesses/{businessId}/conversations", list_conversations, methods=["GET"]),
    ]
