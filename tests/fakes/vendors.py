"""One local HTTP server speaking the Meta Graph, Twilio Messages and Gmail API shapes, and
Google's OAuth token endpoint.

It records every request for assertions, can fail the next N requests with a status, serves
seeded Gmail history, messages and attachments, answers Gmail calls with a refused token with 401, and hands
out the queued access tokens to refresh-token grants. Run it with `with VendorServer() as vendors:`.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import LocalServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)  # when it arrived (wall clock)


@dataclass
class VendorState:
    requests: list[Recorded] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500
    gmail_history: list[str] = field(default_factory=list)
    gmail_history_id: str = "999"  # the mailbox's history id that users.history.list answers with
    google_certs: dict[str, str] = field(default_factory=dict)  # key id -> PEM certificate (Google's OIDC signers)
    gmail_messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    gmail_refused: set[str] = field(default_factory=set)  # access tokens answered with 401
    gmail_attachments: dict[str, bytes] = field(default_factory=dict)  # attachment id -> bytes (users.messages.attachments.get)
    google_tokens: list[str] = field(default_factory=list)  # handed out in turn; none left: invalid_grant
    refused: list[str] = field(default_factory=list)  # why the fake Graph API refused a body (as Meta would: 400)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # media id -> (bytes, content type): Graph and Twilio
    media_trouble: dict[str, list[str]] = field(default_factory=dict)  # media id -> the next downloads' "404" / "hang"
    # the customers' last messages (recipient id -> epoch seconds) and the fake's clock: free text
    # to a customer who last wrote more than 24 hours before `now()` is refused, as Meta does
    last_inbound: dict[str, float] = field(default_factory=dict)
    now: Callable[[], float] = time.time

    def customer_wrote(self, to: str, at: float | None = None) -> None:
        self.last_inbound[to] = self.now() if at is None else at

    def window_problem(self, to: str, body: dict[str, Any]) -> str | None:
        """Meta's refusal of free text outside the 24-hour window (a template, or Messenger's
        HUMAN_AGENT tag within 7 days, is allowed)."""
        if to not in self.last_inbound or body.get("type", "text") == "template" or body.get("status") == "read":
            return None
        age = self.now() - self.last_inbound[to]
        if body.get("messaging_type") == "MESSAGE_TAG" and body.get("tag") == "HUMAN_AGENT":
            return None if age <= 7 * 86400 else "(#10) HUMAN_AGENT tag used more than 7 days after the user's message"
        if age > 24 * 3600:
            return "(#131047) Re-engagement message: more than 24 hours have passed since the customer last replied"
        return None

    def sent(self, path_part: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and path_part in r.path]


WHATSAPP_NEEDS = {"text": ("body",), "template": ("name", "language"), "reaction": ("message_id", "emoji"),
                  "image": (), "audio": (), "video": (), "document": ()}


def whatsapp_problem(body: dict[str, Any]) -> str | None:
    """Why the Cloud API would refuse a /messages body (its documented shapes), or None."""
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if body.get("status") == "read":
        return None if body.get("message_id") else "message_id is required to mark a message read"
    kind = body.get("type", "text")
    if not body.get("to") or kind not in WHATSAPP_NEEDS or not isinstance(body.get(kind), dict):
        return f"to and a {kind!r} object are required"
    missing = [k for k in WHATSAPP_NEEDS[kind] if not body[kind].get(k)]
    if kind in ("image", "audio", "video", "document") and not (body[kind].get("link") or body[kind].get("id")):
        missing.append("link or id")
    if kind == "template" and not body["template"].get("language", {}).get("code"):
        missing.append("language.code")
    return f"{kind} needs {', '.join(missing)}" if missing else None


def whatsapp_user_preferences(wa_id: str, value: str, at: float, phone_number_id: str = "PN1") -> dict[str, Any]:
    """The webhook body the Cloud API sends when a WhatsApp user stops ("stop") or resumes
    ("resume") the business's marketing messages in the app (field `user_preferences`)."""
    detail = f"User requested to {value} marketing messages"
    pref = {"wa_id": wa_id, "detail": detail, "category": "marketing_messages", "value": value, "timestamp": int(at)}
    change = {"field": "user_preferences", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "40700", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Bea"}, "wa_id": wa_id}], "user_preferences": [pref]}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}


def create_app(state: VendorState) -> Starlette:
    async def record(request: Request) -> JSONResponse | None:
        body = await request.body()
        rec = Recorded(request.method, request.url.path, dict(request.headers), query=dict(request.query_params))
        if "json" in request.headers.get("content-type", ""):
            rec.json = await request.json()
        elif body:
            rec.form = dict((await request.form()).items())  # type: ignore[arg-type]
        state.requests.append(rec)
        if state.fail_next > 0:
            state.fail_next -= 1
            return JSONResponse({"error": "injected"}, status_code=state.fail_status)
        return None

    async def graph_messages(request: Request) -> JSONResponse:
        if failed := await record(request):
            return failed
        body = state.requests[-1].json or {}
        problem = whatsapp_problem(body) or state.window_problem(str(body.get("to", "")), body)
        if problem:
            state.refused.append(problem)
            return JSONResponse({"error": {"message": problem, "type": "OAuthException", "code": 100}}, status_code=400)
        if (state.requests[-1].json or {}).get("status") == "read":
            return JSONResponse({"success": True})
        return JSONResponse({"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}]})

    async def graph_me_messages(request: Request) -> JSONResponse:
        if failed := await record(request):
            return failed
        body = state.requests[-1].json or {}
        problem = state.window_problem(str((body.get("recipient") or {}).get("id", "")), body)
        if problem:
            state.refused.append(problem)
            return JSONResponse({"error": {"message": problem, "type": "OAuthException", "code": 10}}, status_code=400)
        return JSONResponse({"recipient_id": "x", "message_id": f"m_{uuid.uuid4().hex}"})

    async def twilio_messages(request: Request) -> JSONResponse:
        return await record(request) or JSONResponse({"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}, status_code=201)

    def refused(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization", "").removeprefix("Bearer ") in state.gmail_refused:
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status_code=401)
        return None

    async def gmail_history(request: Request) -> JSONResponse:
        added = [{"messagesAdded": [{"message": {"id": mid}}]} for mid in state.gmail_history]
        return await record(request) or refused(request) or JSONResponse({"history": added, "historyId": state.gmail_history_id})

    async def gmail_get(request: Request) -> JSONResponse:
        return await record(request) or refused(request) or JSONResponse(state.gmail_messages[request.path_params["mid"]])

    async def gmail_attachment(request: Request) -> JSONResponse:
        """users.messages.attachments.get: a MessagePartBody, the bytes base64url-encoded in `data`."""
        if found := await record(request) or refused(request):
            return found
        data = state.gmail_attachments.get(request.path_params["aid"])
        if data is None or request.path_params["mid"] not in state.gmail_messages:
            return JSONResponse({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}},
                                status_code=404)
        return JSONResponse({"size": len(data), "data": base64.urlsafe_b64encode(data).decode()})

    async def gmail_send(request: Request) -> JSONResponse:
        return await record(request) or refused(request) or JSONResponse({"id": f"g{uuid.uuid4().hex[:12]}", "threadId": "t"})

    async def gmail_watch(request: Request) -> JSONResponse:
        expiration = str(int((time.time() + 7 * 86400) * 1000))
        return await record(request) or refused(request) or JSONResponse({"historyId": "4242", "expiration": expiration})

    async def google_token(request: Request) -> JSONResponse:
        if failed := await record(request):
            return failed
        if not state.google_tokens:
            return JSONResponse({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, status_code=400)
        return JSONResponse({"access_token": state.google_tokens.pop(0), "expires_in": 3599, "token_type": "Bearer",
                             "scope": "https://www.googleapis.com/auth/gmail.modify"})

    async def google_certs(request: Request) -> JSONResponse:
        return await record(request) or JSONResponse(state.google_certs)

    async def trouble(media_id: str) -> Response | None:
        queued = state.media_trouble.get(media_id) or []
        if not queued:
            return None
        what = queued.pop(0)
        if what == "hang":
            await asyncio.sleep(30)
        return JSONResponse({"error": {"message": "not found", "code": 100}}, status_code=404)

    async def graph_media_info(request: Request) -> Response:
        media_id = request.path_params["media_id"]
        if failed := await record(request):
            return failed
        if media_id not in state.media or not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"error": {"message": "unknown media", "code": 100}}, status_code=404)
        data, ctype = state.media[media_id]
        return JSONResponse({"messaging_product": "whatsapp", "id": media_id, "mime_type": ctype, "file_size": len(data),
                             "url": f"{str(request.base_url).rstrip('/')}/graph-media/{media_id}"})

    async def media_download(request: Request) -> Response:
        media_id = request.path_params["media_id"]
        if failed := await record(request) or await trouble(media_id):
            return failed
        if "graph-media" in request.url.path and not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"error": "no token"}, status_code=401)
        if "twilio-media" in request.url.path and not request.headers.get("authorization", "").startswith("Basic "):
            return JSONResponse({"error": "no basic auth"}, status_code=401)
        if media_id not in state.media:
            return JSONResponse({"error": "unknown media"}, status_code=404)
        data, ctype = state.media[media_id]
        return Response(data, media_type=ctype)

    return Starlette(routes=[
        Route("/google/certs", google_certs),
        Route("/graph-media/{media_id}", media_download),
        Route("/twilio-media/{media_id}", media_download),
        Route("/graph/{phone}/messages", graph_messages, methods=["POST"]),
        Route("/graph/me/messages", graph_me_messages, methods=["POST"]),
        Route("/twilio/2010-04-01/Accounts/{sid}/Messages.json", twilio_messages, methods=["POST"]),
        Route("/gmail/gmail/v1/users/me/history", gmail_history),
        Route("/gmail/gmail/v1/users/me/messages/send", gmail_send, methods=["POST"]),
        Route("/gmail/gmail/v1/users/me/watch", gmail_watch, methods=["POST"]),
        Route("/google/token", google_token, methods=["POST"]),
        Route("/gmail/gmail/v1/users/me/messages/{mid}/attachments/{aid}", gmail_attachment),
        Route("/gmail/gmail/v1/users/me/messages/{mid}", gmail_get),
        Route("/graph/{media_id}", graph_media_info),
    ])


class VendorServer(LocalServer):
    def __init__(self) -> None:
        self.state = VendorState()
        super().__init__(create_app(self.state))

    def env(self) -> dict[str, str]:
        return {"META_GRAPH_BASE_URL": f"{self.base}/graph", "TWILIO_API_BASE_URL": f"{self.base}/twilio",
                "GMAIL_API_BASE_URL": f"{self.base}/gmail", "GOOGLE_TOKEN_URI": f"{self.base}/google/token"}
