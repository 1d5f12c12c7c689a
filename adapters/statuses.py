"""What a vendor says about a reply we sent (delivered, read, failed), recorded in the
customer's log as `ReplyStatusReported` against that reply, once per status."""

from __future__ import annotations

from datetime import datetime

import structlog

from agentstream import idempotency as keys
from agentstream.adapters.channels.base import StatusUpdate
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.events import Event, iso, new_event, utc_now

log = structlog.get_logger(__name__)
TAIL = 30  # how far back a read watermark is looked for (Messenger names no message)


async def _sent(store: EventStore, business_id: str, status: StatusUpdate) -> list[Event]:
    """The delivery records the status concerns: by the vendor's id, or, for a watermark, the
    latest record sent to the customer before it."""
    if status.external_id:
        found = await store.find(business_id, keys.sent(status.external_id))
        return [found] if found is not None else []
    stream = f"{business_id}#{status.user_id}"
    head = await store.head(stream)
    records = [e for e in await store.read(stream, max(0, head - TAIL)) if e.type == "ReplyDelivered"
               and getattr(e.payload, "externalId", None) and (status.at is None or e.occurredAt <= status.at)]
    return records[-1:]


async def record_status(store: EventStore, business_id: str, status: StatusUpdate) -> None:
    """ReplyStatusReported for the reply `status` concerns; a status of a message we do not know
    (sent by someone else, or before the log) is logged and dropped."""
    records = await _sent(store, business_id, status)
    if not records:
        log.info("channel.status_unknown_message", status=status.status)
        return
    record = records[0]
    external_id = str(getattr(record.payload, "externalId", None) or status.external_id)
    at: datetime = status.at or utc_now()
    event = new_event("ReplyStatusReported", business_id=business_id, user_id=record.userId, channel=record.channel,
                      payload={"replyEventId": getattr(record.payload, "replyEventId", ""), "status": status.status,
                               "at": iso(at), "externalId": external_id, "error": status.error})
    await store.append(event, external_id=keys.status(external_id, status.status))
