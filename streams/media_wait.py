"""How long a reply to a customer's file waits for what the media process makes of it (the
voice note's transcript, the photo kept or refused), and what it found: up to `mediaWaitMs`,
then the reply is written with what the log holds. Only inbounds with files wait; the wait
reads the customer's stream after the inbound (one query a poll), so it also tells the head."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentstream.adapters.dynamo.event_store import event_from_item
from agentstream.events import Event, MessageReceived
from agentstream.projections.media_notes import MEDIA_TYPES, MediaOutcome, outcome_of, read_files
from agentstream.streams.ports import EventLog

POLL_S = 0.2
READ_LIMIT = 50


@dataclass(frozen=True)
class Waited:
    """What the wait found after the inbound: its media events, any reply already logged to it,
    the stream's head as read, and the last seq read (the reply records it: explain rebuilds the
    prompt from the media events up to it, not from a transcript that landed later)."""

    outcome: MediaOutcome
    reply: Event | None
    head: int | None  # None: more events follow than one read holds
    read_to: int = 0


class MediaWait:
    """Waits up to `wait_ms` for every readable file of an inbound to be settled in the log."""

    def __init__(self, wait_ms: int, images_as_input: bool = False, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`images_as_input`: the model is given stored photos as images (the prompt says so)."""
        self.wait_ms = wait_ms
        self.images_as_input = images_as_input
        self._sleep = sleep
        self._monotonic = monotonic

    @staticmethod
    def applies(inbound: MessageReceived) -> bool:
        return bool(read_files(inbound))

    async def wait(self, store: EventLog, inbound: MessageReceived) -> Waited:
        deadline = self._monotonic() + self.wait_ms / 1000
        while True:
            found = await self._read(store, inbound)
            if found.reply is not None or found.outcome.settled(read_files(inbound)) or self._monotonic() >= deadline:
                return found
            await self._sleep(min(POLL_S, max(0.0, deadline - self._monotonic())))

    @staticmethod
    async def _read(store: EventLog, inbound: MessageReceived) -> Waited:
        items = await store.read_items(inbound.streamId, after_seq=inbound.seq, limit=READ_LIMIT)
        read_to = int(items[-1]["seq"]) if items else inbound.seq
        head = None if len(items) >= READ_LIMIT else read_to
        events, reply = [], None
        for item in items:
            if item.get("type") in MEDIA_TYPES:
                events.append(event_from_item(item))
            elif item.get("type") == "ReplyGenerated" and (item.get("payload") or {}).get("inReplyTo") == inbound.eventId:
                reply = event_from_item(item)
        return Waited(outcome_of(inbound, events), reply, head, read_to)
