"""The channel providers every process sends and receives through. A new channel is a module in
this folder (one `Provider`) and one line here; routes, delivery, credentials, windows and
identities all read this list."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from agentstream.adapters.channels import gmail, meta, rest, telegram, twilio, widget
from agentstream.adapters.channels.base import (
    CredentialSpec, EventChannel, Outgoing, Provider, SendCall, Unsupported, Webhook, needs,
)
from agentstream.adapters.channels.errors import PermanentError

PROVIDERS: tuple[Provider, ...] = (
    widget.PROVIDER,
    rest.PROVIDER,
    meta.PROVIDER,
    twilio.PROVIDER,
    gmail.PROVIDER,
    telegram.PROVIDER,
)
# events the system writes itself (timers, imports) carry a channel that belongs to no provider
SYSTEM = EventChannel("system", "System", can=frozenset(), delivery="none", source="cron")


class UnknownChannel(PermanentError):
    """A channel or provider name no registered provider declares."""


def provider(name: str) -> Provider:
    for p in PROVIDERS:
        if p.name == name:
            return p
    raise UnknownChannel(f"unknown provider {name!r}; known: {', '.join(p.name for p in PROVIDERS)}")


def _by_channel() -> dict[str, list[tuple[Provider, EventChannel]]]:
    found: dict[str, list[tuple[Provider, EventChannel]]] = {}
    for p in PROVIDERS:
        for c in p.channels:
            found.setdefault(c.name, []).append((p, c))
    return found


@lru_cache(maxsize=64)
def channel(name: str) -> EventChannel:
    """An event channel's spec, what it can do being what any of its providers can."""
    if name == SYSTEM.name:
        return SYSTEM
    specs = [c for _, c in _by_channel().get(name, [])]
    if not specs:
        raise UnknownChannel(f"unknown channel {name!r}; known: {', '.join(channel_names())}")
    can = frozenset().union(*(c.can for c in specs))
    return EventChannel(**{**asdict(specs[0]), "can": can})


def channel_names() -> list[str]:
    return sorted([*_by_channel(), SYSTEM.name])


def check() -> None:
    """Providers that produce the same channel agree on all but what they can send."""
    for name, pairs in _by_channel().items():
        first = asdict(pairs[0][1]) | {"can": None}
        for p, c in pairs[1:]:
            if asdict(c) | {"can": None} != first:
                raise ValueError(f"{p.name} declares channel {name!r} unlike {pairs[0][0].name}")


def provider_for(channel_name: str, reply_to: dict[str, str]) -> Provider:
    """Which provider sends to a conversation: the one its inbound came through (`via`), else
    the first registered that produces the channel."""
    pairs = _by_channel().get(channel_name, [])
    via = reply_to.get("via")
    for p, _ in pairs:
        if via is None or p.name == via:
            return p
    raise UnknownChannel(f"no provider sends on {channel_name!r}" + (f" via {via!r}" if via else ""))


async def send(p: Provider, call: SendCall, message: Outgoing) -> str | None:
    """Send through `p`, or a clear Unsupported when the channel cannot show `message`."""
    spec = p.channel(call.channel)
    if spec is None or p.send is None:
        raise Unsupported(f"{p.name} does not send on {call.channel!r}")
    if needs(message) not in spec.can:
        raise Unsupported(f"{spec.title} through {p.name} cannot send {needs(message)}")
    return await p.send(call, message)


def webhooks() -> list[tuple[Provider, Webhook]]:
    return [(p, w) for p in PROVIDERS for w in p.webhooks]


def credential_specs() -> dict[str, CredentialSpec]:
    return {p.name: p.credentials for p in PROVIDERS}


def catalog() -> dict[str, Any]:
    """What the pure side (events, folds) knows of channels: `agentstream/data/channels.json`."""
    specs = {}
    for name in channel_names():
        c = channel(name)
        specs[name] = {"title": c.title, "windowHours": c.window_hours, "maxText": c.max_text, "identity": c.identity,
                       "delivery": c.delivery, "clientIds": c.client_ids, "source": c.source, "can": sorted(c.can)}
    return {"channels": channel_names(), "spec": specs}


def render_catalog() -> str:
    return json.dumps(catalog(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


check()
