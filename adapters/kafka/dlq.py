"""`agent.dlq.v1`: where every consumer (the worker, delivery, analytics) puts a record it gave up on."""

from __future__ import annotations

from typing import Any

import structlog

from agentstream import metrics
from agentstream.adapters.kafka.client import dumps, loads
from agentstream.events import iso, utc_now

log = structlog.get_logger(__name__)


class Dlq:
    """Publishes events that failed for good, with their error, to `agent.dlq.v1`."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, stage: str, key: bytes | None, raw: bytes, error: str) -> None:
        try:
            body: Any = loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = {"stage": stage, "error": error, "failedAt": iso(utc_now()), "event": body}
        await (await self._producer.send(self._topic, key=key, value=dumps(record)))
        metrics.DLQ_EVENTS.labels(stage=stage).inc()
        log.error("dlq.sent", stage=stage, error=error[:300])
