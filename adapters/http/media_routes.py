"""A customer's file, served to the business's owner in the inbox: `GET
/inbox/conversations/{sessionId}/media/{messageId}/{index}`, after the inbox session check (a
session of another business, a message of another session, or a file not kept: the same 404).
The bytes come from the media bucket through the gateway, never a bucket URL; documents are
attachments, everything is `nosniff` and sandboxed."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.http.common import Deps, HttpError, deps
from agentstream.adapters.http.openapi import operation
from agentstream.adapters.http.inbox_session import read_session, still_valid
from agentstream.adapters.media_bucket import customer_prefix

INLINE_KINDS = ("image", "audio")
FILENAMES = {"image": "photo", "audio": "voice-note", "document": "document"}


async def _kept(d: Deps, business_id: str, session_id: str, message_id: str, index: int) -> dict[str, Any]:
    """The file's entry in the message item (404 unless the message is the session's and the file was kept)."""
    session = await d.owner.owned_session(business_id, session_id)
    found = next((m for m in await d.projections.session_messages(session_id) if m.get("messageId") == message_id), None)
    entries = ((found or {}).get("metadata") or {}).get("media") or []
    entry = next((e for e in entries if int(e.get("index", -1)) == index and e.get("key")), None)
    if entry is None or not str(entry["key"]).startswith(customer_prefix(business_id, str(session["userId"]))):
        raise HttpError(404, "no such file")
    return entry


@operation("A customer's photo, voice note or document (images and audio inline, documents as attachments)",
           security="inboxSession", tag="inbox",
           answers={200: "the file's bytes", 403: "not signed in", 404: "no such file", 503: "no media bucket"})
async def customer_file(request: Request) -> Response:
    d = deps(request)
    session = read_session(d, request)
    if session is None or not await still_valid(d, session) or not session.business_id:
        raise HttpError(403, "sign in to the inbox first")
    if getattr(d, "media", None) is None:
        raise HttpError(503, "the media bucket is not configured")
    try:
        index = int(request.path_params["index"])
    except ValueError:
        raise HttpError(404, "no such file") from None
    entry = await _kept(d, session.business_id, request.path_params["sessionId"], request.path_params["messageId"], index)
    found = await d.media.get(entry["key"])  # type: ignore[attr-defined]
    if found is None:
        raise HttpError(404, "no such file")
    data, content_type = found
    kind = str(entry.get("kind"))
    disposition = "inline" if kind in INLINE_KINDS else "attachment"
    name = f"{FILENAMES.get(kind, 'file')}-{index + 1}"
    return Response(data, media_type=str(entry.get("contentType") or content_type), headers={
        "Content-Disposition": f'{disposition}; filename="{name}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store", "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "same-origin"})


def media_routes() -> list[BaseRoute]:
    return [Route("/inbox/conversations/{sessionId}/media/{messageId}/{index}", customer_file, methods=["GET"])]
