"""Webhook routes of the gateway: Meta, Twilio and Gmail. Each verifies the sender, then
appends the messages (idempotently, by the channel's own id) before answering."""

from __future__ import annotations

from urllib.parse import parse_qsl

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.channels import gmail, meta, twilio
from agentstream.adapters.channels.errors import ChannelError, PermanentError, RetryableError
from agentstream.adapters.credentials import CredentialStore
from agentstream.adapters.http_common import Deps, HttpError, decode_utf8, deps, known_business, read_body
from agentstream.events import new_event, utc_now

log = structlog.get_logger(__name__)


async def _secrets(d: Deps, business_id: str, provider: str) -> dict[str, str]:
    await known_business(d, business_id)
    values = await d.credentials.get(business_id, provider)
    if not values:
        raise HttpError(403, f"{provider} is not configured for this business")
    return values


def _channel_error(exc: ChannelError) -> HttpError:
    return HttpError(exc.status, exc.message)


async def meta_verify(request: Request) -> Response:
    d = deps(request)
    secrets = await _secrets(d, request.path_params["businessId"], "meta")
    try:
        return PlainTextResponse(meta.verify_subscription(request.query_params, secrets.get("verifyToken", "")))
    except ChannelError as exc:
        raise _channel_error(exc) from None


async def meta_webhook(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    secrets = await _secrets(d, business_id, "meta")
    body = await read_body(request, d.settings.max_body_bytes)
    try:
        meta.verify_signature(body, request.headers.get("x-hub-signature-256"), secrets.get("appSecret", ""))
        decode_utf8(body)
        messages, statuses = meta.parse(business_id, body)
    except ChannelError as exc:
        raise _channel_error(exc) from None
    for message in messages:
        await d.ingestor.ingest(message)
    for status in statuses:
        await _record_status(d, business_id, status)
    return JSONResponse({"received": len(messages), "statuses": len(statuses)})


async def _record_status(d: Deps, business_id: str, status: meta.StatusUpdate) -> None:
    """delivered/read → ReplyDelivered, failed → DeliveryFailed, for the reply we sent."""
    if status.status not in ("delivered", "read", "failed"):
        return
    sent = await d.store.find(business_id, f"sent:{status.external_id}")
    if sent is None:
        log.info("meta.status_unknown_message", externalId=status.external_id, status=status.status)
        return
    reply_id = getattr(sent.payload, "replyEventId", "")
    kind, extra = ("DeliveryFailed", {"error": status.error or "failed"}) if status.status == "failed" else (
        "ReplyDelivered", {"externalId": status.external_id})
    event = new_event(kind, business_id=business_id, user_id=sent.userId, channel=sent.channel,
                      payload={"replyEventId": reply_id, "attempts": 1, **extra})
    await d.store.append(event, external_id=f"status:{status.external_id}:{status.status}")


async def twilio_webhook(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    secrets = await _secrets(d, business_id, "twilio")
    body = decode_utf8(await read_body(request, d.settings.max_body_bytes))
    form = dict(parse_qsl(body, keep_blank_values=True))
    url = twilio.public_url(d.settings.public_base_url, request.url.path, request.url.query)
    try:
        twilio.verify(url, form, request.headers.get("x-twilio-signature"), secrets.get("authToken", ""))
        message = twilio.parse(business_id, form, utc_now())
    except ChannelError as exc:
        raise _channel_error(exc) from None
    await d.ingestor.ingest(message)
    return Response(twilio.EMPTY_TWIML, media_type="text/xml")


async def gmail_webhook(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    secrets = await _secrets(d, business_id, "gmail")
    body = await read_body(request, d.settings.max_body_bytes)
    try:
        _, history_id = gmail.parse_push(body, request.query_params.get("token"), secrets.get("pushToken", ""))
    except ChannelError as exc:
        raise _channel_error(exc) from None
    try:
        count = await _fetch_gmail(d, business_id, secrets, history_id)
    except (RetryableError, PermanentError) as exc:
        log.warning("gmail.fetch_failed", businessId=business_id, error=str(exc)[:200])
        raise HttpError(503, "Gmail API unavailable; Pub/Sub will retry") from None
    return JSONResponse({"received": count})


async def _fetch_gmail(d: Deps, business_id: str, secrets: dict[str, str], history_id: int) -> int:
    """New messages since the last history id we handled; the id moves only after they are in the log."""
    state = await d.credentials.get(business_id, "gmail-state")
    start = int(state.get("historyId", history_id))
    client = gmail.GmailClient(d.http, d.settings.gmail_api_base_url, secrets.get("accessToken", ""))
    count = 0
    for message_id in await client.history_since(start):
        inbound = gmail.message_to_inbound(business_id, await client.get_message(message_id))
        if inbound is not None:
            await d.ingestor.ingest(inbound)
            count += 1
    await _save_history(d.credentials, business_id, max(start, history_id))
    return count


async def _save_history(store: CredentialStore, business_id: str, history_id: int) -> None:
    await store.set_state(business_id, "gmail-state", {"historyId": str(history_id)})


def webhook_routes() -> list[BaseRoute]:
    return [
        Route("/webhooks/meta/{businessId}", meta_verify, methods=["GET"]),
        Route("/webhooks/meta/{businessId}", meta_webhook, methods=["POST"]),
        Route("/webhooks/twilio/{businessId}", twilio_webhook, methods=["POST"]),
        Route("/webhooks/gmail/{businessId}", gmail_webhook, methods=["POST"]),
    ]
