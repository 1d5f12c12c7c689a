"""Delivers replies from `agent.replies.v1` through the channel the inbound came from.

A reply is sent once: ReplyDelivered in the log (keyed `delivered:<replyEventId>`) is the
record, checked before sending. Channel errors are retried with exponential backoff; after
the last attempt a DeliveryFailed event is appended and the reply goes to the DLQ. Widget
replies go to the open socket; a customer who is not connected gets them on reconnect.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer

from agentstream import metrics
from agentstream.adapters.event_store import EventStore
from agentstream.adapters.kafka import loads
from agentstream.adapters.replies import reply_frame
from agentstream.adapters.ws_hub import SocketHub
from agentstream.events import ReplyGenerated, UnknownSchemaVersion, new_event, parse_event
from agentstream.streams.stopping import UpgradeNeeded

log = structlog.get_logger(__name__)
Sender = Callable[[ReplyGenerated], Awaitable[str | None]]


class Retryable(Exception):
    """A channel failure worth another attempt (429, 5xx, network)."""


class Delivery:
    def __init__(self, store: EventStore, hub: SocketHub, send_external: Sender, attempts: int = 5,
                 base_delay: float = 0.5, dead_letter: Callable[[ReplyGenerated, str], Awaitable[None]] | None = None) -> None:
        self._store = store
        self._dead_letter = dead_letter
        self._hub = hub
        self._send_external = send_external
        self._attempts = attempts
        self._base_delay = base_delay

    async def deliver(self, reply: ReplyGenerated) -> None:
        key = f"delivered:{reply.eventId}"
        if await self._store.has(reply.businessId, key):
            return
        if reply.channel == "websocket":
            if await self._hub.send(reply.streamId, reply_frame(reply)):
                await self._record(reply, "ReplyDelivered", {"externalId": None, "attempts": 1})
            return
        if reply.channel == "rest":
            await self._record(reply, "ReplyDelivered", {"externalId": None, "attempts": 1})
            return
        await self._deliver_external(reply)

    async def _deliver_external(self, reply: ReplyGenerated) -> None:
        error = ""
        for attempt in range(1, self._attempts + 1):
            try:
                external_id = await self._send_external(reply)
                await self._record(reply, "ReplyDelivered", {"externalId": external_id, "attempts": attempt})
                return
            except Retryable as exc:
                error = str(exc)
                log.warning("delivery.retry", eventId=reply.eventId, attempt=attempt, error=error[:200])
                await asyncio.sleep(self._base_delay * 2 ** (attempt - 1) * (0.5 + random.random()))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
        await self._record(reply, "DeliveryFailed", {"error": error[:1000], "attempts": attempt})
        if self._dead_letter:
            await self._dead_letter(reply, error)

    async def _record(self, reply: ReplyGenerated, kind: str, payload: dict[str, Any]) -> None:
        event = new_event(
            kind, business_id=reply.businessId, user_id=reply.userId, channel=reply.channel,
            location_id=reply.locationId, payload={"replyEventId": reply.eventId, **payload},
        )
        sent = payload.get("externalId")
        await self._store.append(event, external_id=f"delivered:{reply.eventId}", aliases=(f"sent:{sent}",) if sent else ())
        outcome = "delivered" if kind == "ReplyDelivered" else "failed"
        metrics.DELIVERIES.labels(channel=reply.channel, outcome=outcome).inc()
        log.info("delivery." + outcome, eventId=reply.eventId, streamId=reply.streamId, channel=reply.channel)


async def _deliver_in_order(delivery: Delivery, replies: list[ReplyGenerated]) -> None:
    for reply in replies:
        await delivery.deliver(reply)


async def run_delivery(consumer: AIOKafkaConsumer, delivery: Delivery, stop: asyncio.Event) -> None:
    """Consume replies in batches, in order per conversation; commit once a batch is handled.

    A batch that fails is retried whole (delivery is idempotent), so nothing is skipped.
    """
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=200, max_records=500)
        by_stream: dict[str, list[ReplyGenerated]] = {}
        for records in batches.values():
            for record in records:
                try:
                    reply = parse_event(loads(record.value))
                except UnknownSchemaVersion as exc:
                    raise UpgradeNeeded(str(exc)) from None  # nothing of this batch is committed
                if isinstance(reply, ReplyGenerated):
                    by_stream.setdefault(reply.streamId, []).append(reply)
        if not batches:
            continue
        while True:
            results = await asyncio.gather(
                *(_deliver_in_order(delivery, replies) for replies in by_stream.values()), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            if not failures:
                break
            log.error("delivery.batch_failed", error=f"{type(failures[0]).__name__}: {failures[0]}")
            await asyncio.sleep(1.0)
        await consumer.commit()
