"""Sends a reply through the provider its conversation came from, with the business's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agentstream.adapters.channels import registry
from agentstream.adapters.channels.base import Outgoing, SendCall, Template, Text
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
            return await registry.send(provider, call, outgoing(reply, provider.name))
        except RetryableError as exc:
            raise Retryable(str(exc)) from None

    return send


def outgoing(reply: ReplyGenerated, provider: str) -> Outgoing:
    """What to send for an outbound event, as its `send` field decided when it was appended: the
    template (Meta's name, Twilio's content SID) outside the window, else the text (with its tag)."""
    send = reply.payload.send
    if send is not None and send.template is not None:
        name = send.template.contentSid if provider == "twilio" else send.template.name
        if not name:
            raise PermanentError(f"the template chosen for this message has no {'contentSid' if provider == 'twilio' else 'name'}"
                                 f" for {provider}: add it to settings.templates")
        return Template(name, send.template.language, tuple(send.template.params))
    if send is not None and send.window == "closed" and not send.tag:
        raise PermanentError("outside the channel's messaging window and no template was chosen: not sent")
    return Text(reply.payload.content, tag=(send.tag or "") if send is not None else "")
