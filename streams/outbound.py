"""Sends a reply through its external channel (Meta, Twilio, Gmail) with the business's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentstream.events import ReplyGenerated
from agentstream.settings import Settings


def external_sender(deps: Any, settings: Settings) -> Callable[[ReplyGenerated], Awaitable[str | None]]:
    async def send(reply: ReplyGenerated) -> str | None:
        raise RuntimeError(f"no outbound sender for channel {reply.channel!r} yet")

    return send
