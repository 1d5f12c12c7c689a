"""Signals on `agent.signals.v1` (key streamId): what a conversation shows while its reply is
prepared — `typing`, and `delta` (the reply's text so far, as the model writes it) — and
`revoked` (a widget visitor was revoked: every gateway closes its sockets). They are never
appended to the log; losing one is harmless (the reply event is what counts; a revoked
visitor's socket left open is refused at its next refresh or reconnect), so a failed send is
logged and forgotten."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import structlog

from agentstream.events import MessageReceived

log = structlog.get_logger(__name__)
Send = Callable[[bytes, bytes], Awaitable[None]]  # (key, value) onto the topic, not waiting for the broker


def typing_frame(inbound: MessageReceived) -> dict[str, Any]:
    """A reply to the conversation of `inbound` is being prepared."""
    return {"type": "typing", "streamId": inbound.streamId, "businessId": inbound.businessId, "channel": inbound.channel,
            "deliverTo": dict(inbound.payload.replyTo), "reading": inbound.payload.externalId or ""}


def delta_frame(inbound: MessageReceived, reply_event_id: str, text: str) -> dict[str, Any]:
    """The reply `reply_event_id` as written so far (the whole text so far: a lost frame is made up by the next)."""
    return {"type": "delta", "streamId": inbound.streamId, "channel": inbound.channel, "eventId": reply_event_id, "text": text}


def revoked_frame(stream: str) -> dict[str, Any]:
    """The widget visitor of `stream` was revoked: its sockets close, on every gateway."""
    return {"type": "revoked", "streamId": stream}


def socket_frame(signal: dict[str, Any]) -> dict[str, Any]:
    """What the widget gets of a signal."""
    if signal.get("type") == "delta":
        return {"type": "delta", "eventId": signal.get("eventId"), "text": signal.get("text", "")}
    return {"type": "typing"}


class Signals:
    """Publishes signals; never raises."""

    def __init__(self, send: Send | None = None) -> None:
        self._send = send

    async def typing(self, inbound: MessageReceived) -> None:
        await self._put(typing_frame(inbound))

    async def delta(self, inbound: MessageReceived, reply_event_id: str, text: str) -> None:
        await self._put(delta_frame(inbound, reply_event_id, text))

    async def revoked(self, stream: str) -> None:
        await self._put(revoked_frame(stream))

    async def _put(self, frame: dict[str, Any]) -> None:
        if self._send is None:
            return
        try:
            await self._send(frame["streamId"].encode(), orjson.dumps(frame))
        except Exception as exc:  # noqa: BLE001 - a lost signal is harmless
            log.info("signals.not_sent", kind=frame["type"], error=type(exc).__name__)


REVOKED = (4403, "visitor revoked")  # the close code and reason a revoked visitor's sockets get


class LiveSockets(Protocol):
    def connected(self, stream: str) -> bool: ...

    async def send_live(self, stream: str, frame: dict[str, Any]) -> None: ...

    async def close_all(self, stream: str, code: int, reason: str) -> None: ...


async def relay_signals(consumer: Any, hub: LiveSockets, stop: asyncio.Event) -> None:
    """The gateway's loop: each signal of a conversation whose widget is connected here goes to
    its sockets, and a `revoked` one closes them (a signal for no socket here, or of another
    channel, is dropped)."""
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                stream = (record.key or b"").decode("utf-8", "replace")
                if not hub.connected(stream):
                    continue
                try:
                    signal = orjson.loads(record.value)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(signal, dict) and signal.get("type") == "revoked":
                    await hub.close_all(stream, *REVOKED)
                else:
                    await hub.send_live(stream, socket_frame(signal))


async def show_typing(consumer: Any, show: Callable[[dict[str, Any]], Awaitable[None]], stop: asyncio.Event) -> None:
    """The delivery's loop: each `typing` signal shown through the customer's vendor (`show`)."""
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                try:
                    signal = orjson.loads(record.value)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(signal, dict) and signal.get("type") == "typing":
                    await show(signal)
