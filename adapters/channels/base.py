"""What a channel provider is: the event channels it produces, its credentials, its webhooks and
how it sends. One provider per module in this folder, listed once in `registry.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from starlette.responses import Response

from agentstream.adapters.channels.errors import PermanentError
from agentstream.adapters.ingest import InboundMessage

Delivery = Literal["vendor", "socket", "poll", "none"]
Capability = Literal["text", "template", "image", "audio", "document", "video", "typing", "read_receipts", "reaction"]
IdentityKind = Literal["phone", "email"]


@dataclass(frozen=True)
class EventChannel:
    """One value of the envelope's `channel` and what it can do.

    `window_hours`: free text only this long after the customer's last message (None: no window);
    `identity`: what the customer's id on it is (a phone number, an email address), if anything;
    `delivery`: who delivers its replies (a vendor's API from `agentstream delivery`, the gateway's
    sockets, or nobody: the client polls); `client_ids`: its message ids are chosen by the client
    (unique per customer, not per business)."""

    name: str
    title: str
    can: frozenset[Capability] = frozenset({"text"})
    window_hours: int | None = None
    max_text: int = 4096
    identity: IdentityKind | None = None
    delivery: Delivery = "vendor"
    client_ids: bool = False
    source: str = "webhook"  # the seed's message metadata.source


@dataclass(frozen=True)
class CredentialSpec:
    """The keys `credentials set` accepts for a provider. `generated`: the key `credentials
    rotate` makes up; `hashed`: keys stored only as their SHA-256 (key → stored name);
    `keep_previous`: keys whose replaced value keeps working (key → stored name)."""

    fields: tuple[str, ...]
    generated: str | None = None
    public: tuple[str, ...] = ()  # not secret: `credentials show` prints them as they are
    hashed: Mapping[str, str] = field(default_factory=dict)
    keep_previous: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """A setting a provider declares (its API address, say): the environment or `.env`, else a default."""

    env: str
    default: str

    def resolve(self, settings: Any) -> str:
        return settings.setting(self.env, self.default)


# ---- what a provider is asked to send ------------------------------------------------------------

@dataclass(frozen=True)
class Text:
    text: str
    tag: str = ""  # outside the messaging window: the vendor's message tag (Meta's HUMAN_AGENT)


@dataclass(frozen=True)
class Template:
    """An approved template (Meta: its name; Twilio: its content SID) with its parameters in order."""

    name: str
    language: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Media:
    kind: Literal["image", "audio", "document", "video"]
    url: str
    caption: str = ""
    filename: str = ""


@dataclass(frozen=True)
class Typing:
    """Show that a reply is being written; `reading`: the vendor id of the customer's message to
    mark read at the same time, where the vendor ties the two (WhatsApp)."""

    reading: str = ""


@dataclass(frozen=True)
class Reaction:
    emoji: str
    message_id: str  # the vendor's id of the message reacted to


Outgoing = Text | Template | Media | Typing | Reaction


def needs(message: Outgoing) -> Capability:
    """The capability a channel must have to send `message`."""
    if isinstance(message, Media):
        return message.kind
    return {Text: "text", Template: "template", Typing: "typing", Reaction: "reaction"}[type(message)]  # type: ignore[return-value]


class Unsupported(PermanentError):
    """A channel asked to send what it cannot: a clear error, never a silent drop."""


@dataclass(frozen=True)
class SendCall:
    """One send: the business's credentials for the provider, where to (the inbound's replyTo),
    the provider's API base and the process's shared clients (`http`, and `gmail` auth)."""

    business_id: str
    channel: str
    creds: Mapping[str, str]
    to: Mapping[str, str]
    base: str
    deps: Any
    public_base: str = ""  # the gateway's public address, for vendors' status callbacks


# ---- what a provider receives ----------------------------------------------------------------------

@dataclass(frozen=True)
class StatusUpdate:
    """What a vendor says about a message we sent (by the vendor's id of it)."""

    external_id: str  # "" with `user_id`: every message sent to that customer up to `at`
    status: Literal["delivered", "read", "failed"]
    at: datetime | None = None
    error: str | None = None
    user_id: str = ""


@dataclass(frozen=True)
class OptSignal:
    """A vendor's signal, sent without a message, that a customer stopped (STOP) or resumed (START)
    business-started messages, e.g. WhatsApp's `user_preferences` webhook."""

    user_id: str
    channel: str
    signal: Literal["STOP", "START"]
    external_id: str  # the vendor's identity of this signal: one event per signal, whatever the retries
    at: datetime | None = None


@dataclass(frozen=True)
class WebhookCall:
    """A webhook request as a provider sees it: verified against `secrets` before it is parsed."""

    business_id: str
    url: str  # the public URL the vendor called (signatures cover it)
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    secrets: Mapping[str, str]


@dataclass
class Received:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    opt_signals: list[OptSignal] = field(default_factory=list)
    response: Response | None = None  # the vendor's expected answer; JSON counts by default
    after: Callable[[], Awaitable[None]] | None = None  # once every message is in the log


Verify = Callable[[WebhookCall, Any], Awaitable[None] | None]  # (call, gateway deps); raises BadSignature
Receive = Callable[[WebhookCall, Any], Awaitable[Received]]  # (call, gateway deps); raises ChannelError


@dataclass(frozen=True)
class Webhook:
    method: str
    path: str  # under /webhooks/, with {businessId}
    verify: Verify
    receive: Receive
    refusal: str  # the one 403 message for a missing business, missing secrets or a failed check


Send = Callable[[SendCall, Outgoing], Awaitable[str | None]]


@dataclass(frozen=True)
class Provider:
    """A channel provider: its credential entry `name`, the event channels it produces, its
    settings, webhooks and sender (None: its replies are not sent through a vendor's API)."""

    name: str
    channels: tuple[EventChannel, ...]
    credentials: CredentialSpec
    base_url: Setting | None = None
    webhooks: tuple[Webhook, ...] = ()
    send: Send | None = None

    def channel(self, name: str) -> EventChannel | None:
        return next((c for c in self.channels if c.name == name), None)
