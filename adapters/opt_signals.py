"""A vendor's opt-out signal sent without a message (WhatsApp's `user_preferences`: the customer
stopped or resumed marketing messages in the app), recorded in the customer's log as
`CustomerOptedOut` / `CustomerOptedIn` by `vendor`, once per signal. A signal that rides on a
message (Twilio's `OptOutType`) is read by the worker with that message instead."""

from __future__ import annotations

import structlog

from agentstream import idempotency as keys
from agentstream.adapters.channels.base import OptSignal
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.events import new_event
from agentstream.projections.optout import VENDOR_SIGNALS

log = structlog.get_logger(__name__)


async def record_opt_signal(store: EventStore, business_id: str, signal: OptSignal) -> None:
    """Append the signal's CustomerOptedOut (STOP) or CustomerOptedIn (START); a retry of the
    vendor's call finds the first (its key is the signal's own id)."""
    kind = "CustomerOptedOut" if VENDOR_SIGNALS[signal.signal] == "out" else "CustomerOptedIn"
    event = new_event(kind, business_id=business_id, user_id=signal.user_id, channel=signal.channel,
                      occurred_at=signal.at,
                      payload={"sourceEventId": "", "by": "vendor", "keyword": f"vendor:{signal.signal}"})
    result = await store.append(event, external_id=keys.opt_signal(signal.channel, signal.external_id))
    log.info("channel.opt_signal", type=kind, channel=signal.channel, eventId=result.event.eventId,
             duplicate=result.duplicate)
