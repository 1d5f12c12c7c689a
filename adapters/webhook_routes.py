"""Webhook routes of the gateway: Meta, Twilio and Gmail. Each reads the raw body (413 over the
limit), verifies the sender with the business's secret before it parses anything or looks
anything else up (an unknown business gets the same 403 as a bad signature), then appends the
messages (idempotently, by the channel's own id) before answering."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.channels import gmail, meta, twilio
from agentstream.adapters.channels.errors import BadSignature, ChannelError, PermanentError, RetryableError
from agentstream.adapters.credentials import CredentialStore
from agentstream.adapters.http_common import Deps, HttpError, decode_utf8, deps, read_body
from agentstream.events import new_event, utc_now

log = structlog.get_logger(__name__)
T = TypeVar("T")


REFUSED = {
    "meta": "X-Hub-Signature-256 missing or not valid for this business",
    "meta-subscribe": "verify token missing or not valid for this business",
    "twilio": "X-Twilio-Signature missing or not valid for this business",
    "gmail": "push token missing or not valid for this business",
}


async def _verified(d: Deps, business_id: str, provider: str, refusal: str,
                    check: Callable[[dict[str, str]], T]) -> tuple[dict[str, str], T]:
    """(secrets, check(secrets)) with the business's secrets for `provider`, then the business is
    looked up. No secrets (an unknown business too), a failed check and a business missing from
    business-info all answer the same 403 `refusal`."""
    secrets = await d.credentials.get(business_id, provider)
    try:
        if not secrets:
            raise BadSignature(refusal)
        result = check(secrets)
    except BadSignature:
        raise HttpError(403, refusal) from None
    if await d.directory.info(business_id) is None:
        raise HttpError(403, refusal)
    return secrets, result


def _push_token(token: str | None, expected: str) -> None:
    if not token or not expected or not hmac.compare_digest(token, expected):
        raise BadSignature("push token does not match")


def _channel_error(exc: ChannelError) -> HttpError:
    return HttpError(exc.status, exc.message)


async def meta_verify(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    _, challenge = await _verified(d, business_id, "meta", REFUSED["meta-subscribe"], lambda secrets: (
        meta.verify_subscription(request.query_params, secrets.get("verifyToken", ""))))
    return PlainTextResponse(challenge)


async def meta_webhook(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    body = await read_body(request, d.settings.max_body_bytes)
    await _verified(d, business_id, "meta", REFUSED["meta"], lambda secrets: meta.verify_signature(
        body, request.headers.get("x-hub-signature-256"), secrets.get("appSecret", "")))
    try:
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
    body = await read_body(request, d.settings.max_body_bytes)
    # the signature covers the form's fields, so they are split out first (leniently: UTF-8 is checked after)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    url = twilio.public_url(d.settings.public_base_url, request.url.path, request.url.query)
    await _verified(d, business_id, "twilio", REFUSED["twilio"], lambda secrets: twilio.verify(
        url, form, request.headers.get("x-twilio-signature"), secrets.get("authToken", "")))
    form = dict(parse_qsl(decode_utf8(body), keep_blank_values=True))
    try:
        message = twilio.parse(business_id, form, utc_now())
    except ChannelError as exc:
        raise _channel_error(exc) from None
    await d.ingestor.ingest(message)
    return Response(twilio.EMPTY_TWIML, media_type="text/xml")


async def gmail_webhook(request: Request) -> Response:
    d = deps(request)
    business_id = request.path_params["businessId"]
    body = await read_body(request, d.settings.max_body_bytes)
    secrets, _ = await _verified(d, business_id, "gmail", REFUSED["gmail"], lambda secrets: _push_token(
        request.query_params.get("token"), secrets.get("pushToken", "")))
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
    client = gmail.GmailClient(d.http, d.settings.gmail_api_base_url, d.gmail, business_id)
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
