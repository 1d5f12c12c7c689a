"""The vendors' webhooks, one route per webhook each registered provider declares.

Each reads the raw body (413 over the limit) and verifies the sender with the business's secret
before it parses anything or looks anything else up: an unknown business, missing secrets and a
failed check all get the same 403. Then the messages are appended (idempotently, by the
channel's own id) and the vendor's statuses and opt-out signals recorded before the vendor is
answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentstream.adapters.channels import registry
from agentstream.adapters.channels.base import Provider, Webhook, WebhookCall
from agentstream.adapters.channels.errors import BadSignature, ChannelError
from agentstream.adapters.channels.http import public_url
from agentstream.adapters.http import api_models as api
from agentstream.adapters.http.common import Deps, HttpError, deps, read_body
from agentstream.adapters.http.openapi import Operation
from agentstream.adapters.opt_signals import record_opt_signal
from agentstream.adapters.statuses import record_status

log = structlog.get_logger(__name__)


async def _verified_call(d: Deps, request: Request, provider: Provider, hook: Webhook) -> WebhookCall:
    business_id = request.path_params["businessId"]
    body = await read_body(request, d.settings.max_body_bytes) if hook.method == "POST" else b""
    secrets = await d.credentials.get(business_id, provider.name)
    call = WebhookCall(business_id, public_url(d.settings.public_base_url, request.url.path, request.url.query),
                       request.headers, request.query_params, body, secrets)
    try:
        if not secrets:
            raise BadSignature(hook.refusal)
        checked = hook.verify(call, d)
        if checked is not None:
            await checked
    except (BadSignature, UnicodeError, ValueError):  # a header with odd bytes is a bad signature, never a 500
        raise HttpError(403, hook.refusal) from None
    if await d.directory.info(business_id) is None:
        raise HttpError(403, hook.refusal)
    return call


def handler(provider: Provider, hook: Webhook) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        d = deps(request)
        call = await _verified_call(d, request, provider, hook)
        try:
            received = await hook.receive(call, d)
        except ChannelError as exc:
            raise HttpError(exc.status, exc.message) from None
        for message in received.messages:
            await d.ingestor.ingest(message)
        for status in received.statuses:
            await record_status(d.store, call.business_id, status)
        for signal in received.opt_signals:
            await record_opt_signal(d.store, call.business_id, signal)
        if received.after is not None:
            await received.after()
        return received.response or JSONResponse({"received": len(received.messages), "statuses": len(received.statuses)})

    handle.__openapi__ = _described(provider, hook)  # type: ignore[attr-defined]
    return handle


def _described(provider: Provider, hook: Webhook) -> Operation:
    what = "subscription handshake" if hook.method == "GET" else "webhook"
    return Operation(f"{provider.name}'s {what} ({_refusal_name(provider, hook)})", security=f"webhook-{provider.name}",
                     tag="webhooks", answers={200: api.WebhookReceipt, 403: api.Error},
                     description="The vendor's own body, verified before it is parsed; messages are appended "
                                 "idempotently by the channel's id before the vendor is answered.")


def _refusal_name(p: Provider, hook: Webhook) -> str:
    """`meta` for a provider's main webhook, `meta-subscribe` for its handshake, `twilio-status`…"""
    if hook.method == "GET":
        return f"{p.name}-subscribe"
    suffix = hook.path.rpartition("{businessId}")[2].strip("/")
    return f"{p.name}-{suffix}" if suffix else p.name


REFUSED = {_refusal_name(p, hook): hook.refusal for p, hook in registry.webhooks()}


def webhook_routes() -> list[BaseRoute]:
    return [Route(hook.path, handler(p, hook), methods=[hook.method]) for p, hook in registry.webhooks()]

