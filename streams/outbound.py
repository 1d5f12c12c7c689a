"""Sends a reply through the provider its conversation came from, with the business's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agentstream.adapters.channels import registry
from agentstream.adapters.channels.base import SendCall, Text
from agentstream.adapters.channels.errors import PermanentError, RetryableError
from agentstream.events import ReplyGenerated
from agentstream.streams.delivery import Retryable


class SendConfig(Protocol):
    """The gateway's public address (callbacks), and the settings a provider's base URL names."""

    @property
    def public_base_url(self) -> str: ...


def external_sender(deps: Any, settings: SendConfig) -> Callable[[ReplyGenerated], Awaitable[str | None]]:
    """A function sending one reply's text; RetryableError becomes delivery's Retryable."""

    async def send(reply: ReplyGenerated) -> str | None:
        to = dict(reply.payload.deliverTo)
        provider = registry.provider_for(reply.channel, to)
        creds = await deps.credentials.get(reply.businessId, provider.name)
        if not creds:
            raise PermanentError(f"{reply.businessId} has no {provider.name} credentials")
        base = provider.base_url.resolve(settings) if provider.base_url else ""
        call = SendCall(reply.businessId, reply.channel, creds, to, base, deps, settings.public_base_url)
        try:
            return await registry.send(provider, call, Text(reply.payload.content))
        except RetryableError as exc:
            raise Retryable(str(exc)) from None

    return send
