"""Telling the owner that a conversation was handed to a person: the HandoffRequested event on
`agent.handoffs.v1` (keyed by streamId, so one conversation's records stay in order), then the
business's webhook, if it has one, called in the background with retries (adapters/owner_webhook).

The worker calls this when it folds a HandoffRequested that took effect. The topic record is
sent before the worker's write (a failure retries the event, as a reply's publication does); the
webhook is best effort beside it: a worker stopped during its retries does not call it again."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from agentstream.adapters.kafka.client import dumps
from agentstream.adapters.owner_webhook import OwnerWebhook
from agentstream.events import Event
from agentstream.streams.replier import OnHandoff

log = structlog.get_logger(__name__)


def make_handoff_notifier(producer: Any, topic: str, webhook: OwnerWebhook | None) -> OnHandoff:
    """The worker's `on_handoff`: publish to `topic`, then call the webhook (in the background)."""
    calls: set[asyncio.Task[Any]] = set()

    async def on_handoff(event: Event) -> None:
        record = event.to_json_dict()
        await (await producer.send(topic, key=event.streamId.encode(), value=dumps(record)))
        log.info("handoff.published", eventId=event.eventId, streamId=event.streamId, by=record["payload"]["by"])
        if webhook is not None:
            task = asyncio.create_task(webhook.notify(event.businessId, record))
            calls.add(task)
            task.add_done_callback(calls.discard)

    return on_handoff

