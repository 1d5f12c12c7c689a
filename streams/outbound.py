"""Sends a reply through the provider its conversation came from, with the business's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from agentstream.adapters.channels import registry
from agentstream.adapters.channels.base import Outgoing, SendCall, Template, Text, Typing
from agentstream.adapters.channels.errors import PermanentError, RetryableError
from agentstream.events import ReplyGenerated
from agentstream.streams.delivery import Retryable

log = structlog.get_logger(__name__)


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


VENDOR_TYPING = frozenset({"whatsapp", "messenger"})  # the vendors whose typing indicator the delivery shows


def typing_sender(deps: Any, settings: SendConfig) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """A function showing a `typing` signal to the customer through their vendor (the registry's
    typing signal: WhatsApp marks their message read with a typing indicator, Messenger gets
    typing_on); a channel or provider that cannot, or a failure, is let go (a signal is harmless to lose)."""

    async def show(signal: dict[str, Any]) -> None:
        channel = str(signal.get("channel") or "")
        if signal.get("type") != "typing" or channel not in VENDOR_TYPING:
            return
        to = {str(k): str(v) for k, v in (signal.get("deliverTo") or {}).items()}
        business = str(signal.get("businessId") or "")
        try:
            provider = registry.provider_for(channel, to)
            creds = await deps.credentials.get(business, provider.name)
            if not creds:
                return
            base = provider.base_url.resolve(settings) if provider.base_url else ""
            call = SendCall(business, channel, creds, to, base, deps, settings.public_base_url)
            await registry.send(provider, call, Typing(reading=str(signal.get("reading") or "")))
        except Exception as exc:  # noqa: BLE001 - a lost typing indicator is harmless
            log.info("delivery.typing_not_shown", channel=channel, error=type(exc).__name__)

    return show
