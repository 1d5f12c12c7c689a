"""Sends a reply through its external channel (Meta, Twilio, Gmail) with the business's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentstream.adapters.channels.errors import PermanentError, RetryableError
from agentstream.adapters.channels.senders import META_SENDERS, SENDERS, provider_for
from agentstream.events import ReplyGenerated
from agentstream.settings import Settings
from agentstream.streams.delivery import Retryable


def _base(settings: Settings, provider: str) -> str:
    return {"twilio": settings.twilio_api_base_url, "meta": settings.meta_graph_base_url,
            "gmail": settings.gmail_api_base_url}[provider]


def external_sender(deps: Any, settings: Settings) -> Callable[[ReplyGenerated], Awaitable[str | None]]:
    """A function sending one reply; RetryableError becomes delivery's Retryable."""

    async def send(reply: ReplyGenerated) -> str | None:
        to = dict(reply.payload.deliverTo)
        provider = provider_for(reply.channel, to)
        creds = await deps.credentials.get(reply.businessId, provider)
        if not creds:
            raise PermanentError(f"{reply.businessId} has no {provider} credentials")
        sender = META_SENDERS[reply.channel] if provider == "meta" else SENDERS[provider]
        base, text = _base(settings, provider), reply.payload.content
        try:
            if provider == "gmail":  # an hour-long token: refreshed on a 401, then sent again
                return await deps.gmail.call(reply.businessId, lambda token: sender(
                    deps.http, base, creds | {"accessToken": token}, to, text))
            return await sender(deps.http, base, creds, to, text)
        except RetryableError as exc:
            raise Retryable(str(exc)) from None

    return send
