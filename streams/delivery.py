"""Delivers replies from `agent.replies.v1` through the channel the inbound came from.

Two kinds of consumer share the topic:
- `agentstream delivery` (any number of them, one consumer group `DELIVERY_GROUP`) sends the
  replies of the channels a vendor delivers (through the channel registry) and records the
  polled ones (REST);
- every gateway reads every reply from the latest offset (no group, no commits) and sends the
  widget replies whose customer holds a socket on *that* gateway. A customer connected nowhere
  (or whose reply came before the gateway started) gets it from the log on (re)connect.

A reply is sent once: ReplyDelivered in the log (keyed `delivered:<replyEventId>`) is the record,
checked before sending and written right after the vendor accepted it; an external send is made
under a claim (`sending:<replyEventId>`, held 20 s, more than a vendor call's 15 s timeout), so two
processes that both believe they own a partition do not both send. Twilio and Meta take no
idempotency key, so the vendor's acceptance is marked on the claim at once (one uncontended
write, before the record, an append that may wait for the conversation's head): a process
killed after the mark leaves the reply recorded by the next one, never sent again; one killed
between the vendor's answer and the mark sends it again through the next process, once the
claim has run out: that window is one DynamoDB write long.
Failures follow `ConsumerRunner`'s policy; a reply given up on gets DeliveryFailed and the DLQ.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from agentstream import channel_specs
from agentstream.adapters.channels import registry
from agentstream.adapters.channels.errors import PermanentError
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.kafka.client import first_publication, loads
from agentstream.adapters.replies import DeliveryLog, Sent, reply_frame
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.events import OUTBOUND_TYPES, ReplyGenerated, parse_event
from agentstream.streams.runner import ConsumerRunner, Failure, RetryPolicy

log = structlog.get_logger(__name__)
Sender = Callable[[ReplyGenerated], Awaitable[str | None]]
PERMANENT = (PermanentError,)


class Retryable(Exception):
    """A channel failure worth another attempt (429, 5xx, network)."""


def parse_reply(record: Any) -> ReplyGenerated | None:
    """The outbound event (a reply, a person's message, the handoff notice) of a record of
    `agent.replies.v1`; None for any other event."""
    event = parse_event(loads(record.value))
    return event if event.type in OUTBOUND_TYPES else None  # type: ignore[return-value]


@dataclass(frozen=True)
class LiveReply:
    """An outbound event as a gateway reads it, and whether its record is the reply's first
    publication (the worker has just logged it: no process can have delivered it yet)."""

    reply: ReplyGenerated
    first: bool = False


def parse_live_reply(record: Any) -> LiveReply | None:
    reply = parse_reply(record)
    return None if reply is None else LiveReply(reply, first_publication(record.headers))


class ExternalDelivery:
    """The replies of external channels (and REST, recorded as delivered: it is polled).

    Before an external send the process claims the reply for `hold_ms`: a process that lost its
    partitions without knowing yet (evicted from the group while the machine was starved, say)
    and the new owner would otherwise both send it. The other waits until the reply is recorded
    or the claim runs out (its holder died: the send-twice window)."""

    def __init__(self, store: EventStore, send_external: Sender, hold_ms: int = 20_000, poll_s: float = 0.5) -> None:
        self.log = DeliveryLog(store)
        self._send_external = send_external
        self._owner = f"delivery-{uuid.uuid4().hex[:12]}"
        self._hold_ms, self._poll_s = hold_ms, poll_s
        self._accepted: dict[str, str | None] = {}  # sent by this process, not yet recorded

    async def deliver(self, reply: ReplyGenerated, attempt: int = 1) -> None:
        delivery = registry.channel(reply.channel).delivery
        if delivery == "socket" or await self.log.done(reply):
            return
        external_id = None
        if delivery != "poll":  # a polled reply is delivered once it is in the log
            claim = await self._claimed(reply)
            if claim is False:
                return  # another process sent and recorded it meanwhile
            sent = claim if isinstance(claim, Sent) else await self._send_once(reply)
            external_id = sent.external_id
        await self.log.record(reply, "ReplyDelivered", {"externalId": external_id, "attempts": attempt})
        self._accepted.pop(reply.eventId, None)

    async def _send_once(self, reply: ReplyGenerated) -> Sent:
        """Send `reply` and mark it sent on its claim; a retry after a failed write (the mark or
        the record) writes again and never sends again."""
        if reply.eventId not in self._accepted:
            self._accepted[reply.eventId] = await self._send_external(reply)
        await self.log.mark_sent(reply, self._accepted[reply.eventId])
        return Sent(self._accepted[reply.eventId])

    async def _claimed(self, reply: ReplyGenerated) -> bool | Sent:
        """True once this process holds the claim and the reply is still not recorded; False if it
        was recorded meanwhile (by a process whose claim has since run out, too); `Sent` if a
        process sent it and died before recording it."""
        deadline = time.monotonic() + 2 * self._hold_ms / 1000
        while not await self.log.claim(reply, self._owner, self._hold_ms):
            if await self.log.done(reply):
                return False
            sent = await self.log.sent_before(reply)
            if sent is not None:
                return sent
            if time.monotonic() > deadline:
                raise Retryable(f"reply {reply.eventId} stays claimed by another delivery process")
            await asyncio.sleep(self._poll_s)
        return not await self.log.done(reply)  # recorded by another between our check and the claim

    async def failed(self, reply: ReplyGenerated, error: str, attempts: int) -> None:
        self._accepted.pop(reply.eventId, None)
        await self.log.record(reply, "DeliveryFailed", {"error": error[:1000], "attempts": max(1, attempts)})


class SocketDelivery:
    """The widget replies of the customers connected to this gateway.

    A reply published again (a worker that took a conversation over publishes the replies it
    finds logged) is sent only if the log has no record of its delivery; one published the first
    time has none, so its frame goes out without that read (a socket that got it at connect from
    the log is not sent it again: the hub sends a reply once a socket)."""

    def __init__(self, store: EventStore, hub: SocketHub, heads: SettledHeads | None = None) -> None:
        """`heads`: this gateway's guesses of conversations' heads, set by the records it appends
        and dropped by every outbound event it reads (one it does not record moves the head)."""
        self.log = DeliveryLog(store, heads)
        self._hub = hub
        self._heads = heads

    async def deliver(self, live: LiveReply, attempt: int = 1) -> None:
        reply = live.reply
        if self._heads is not None:
            self._heads.drop(reply.streamId)
        if channel_specs.delivery(reply.channel) != "socket" or not self._hub.connected(reply.streamId):
            return
        if not live.first and await self.log.done(reply):
            return
        if await self._hub.send(reply.streamId, reply_frame(reply)):
            await self.log.record(reply, "ReplyDelivered", {"externalId": None, "attempts": attempt})


def dead_letter_to(dlq: Any, delivery: ExternalDelivery | None) -> Callable[[Failure[ReplyGenerated]], Awaitable[None]]:
    """A reply given up on: DeliveryFailed in its log (when there is a reply), then the DLQ."""

    async def dead_letter(failure: Failure[ReplyGenerated]) -> None:
        reply = failure.item
        if reply is not None and delivery is not None:
            await delivery.failed(reply, failure.error, failure.attempts)
        stage = "delivery-parse" if failure.stage == "parse" else "delivery"
        await dlq.send(stage, failure.record.key, failure.record.value, failure.error)

    return dead_letter


def external_runner(consumer: Any, delivery: ExternalDelivery, dlq: Any,
                    policy: RetryPolicy = RetryPolicy()) -> ConsumerRunner[ReplyGenerated]:
    """The loop of `agentstream delivery` (the consumer in `DELIVERY_GROUP`, not yet subscribed)."""
    return ConsumerRunner(consumer, "delivery", parse_reply, delivery.deliver, dead_letter_to(dlq, delivery),
                          key_of=lambda record, reply: reply.streamId, policy=policy, permanent=PERMANENT)


def socket_runner(consumer: Any, delivery: SocketDelivery, dlq: Any,
                  policy: RetryPolicy = RetryPolicy(attempts=3, timeout=5.0)) -> ConsumerRunner[LiveReply]:
    """The gateway's loop: no group, nothing committed (a restarted gateway holds no sockets)."""

    async def no_commit(positions: Any) -> None:
        pass

    async def dead_letter(failure: Failure[LiveReply]) -> None:
        if failure.stage == "parse":  # `agentstream delivery` dead-letters bad records once for all
            return
        log.warning("delivery.socket_gave_up", error=failure.error[:300])  # on reconnect it comes from the log

    return ConsumerRunner(consumer, "sockets", parse_live_reply, delivery.deliver, dead_letter,
                          key_of=lambda record, live: live.reply.streamId, policy=policy, commit=no_commit)
