"""A processor over the real local DynamoDB server with an offline responder that counts its
calls, and helpers to feed it conversations (the `world` fixture is in conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, new_event
from agentstream.projections.base import Projection
from agentstream.projections.context import ReplyContext
from agentstream.registry import PROJECTIONS
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


@dataclass
class CountingResponder:
    """The offline responder, recording which inbound event each model call answered."""

    answered: list[str] = field(default_factory=list)
    inner: OfflineResponder = field(default_factory=OfflineResponder)

    @property
    def calls(self) -> int:
        return len(self.answered)

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.answered.append(ctx.inbound_event_id)
        return await self.inner.answer(ctx)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class World:
    ddb: Any
    settings: Settings
    store: EventStore
    processor: ConversationProcessor
    responder: CountingResponder
    published: list[Event]


def new_processor(ddb: Any, settings: Settings, responder: Any, published: list[Event],
                  registry: Sequence[Projection] = PROJECTIONS) -> ConversationProcessor:
    """The worker's processor over `ddb`; the replies it publishes land in `published`."""

    async def publish(event: Event, first: bool = False) -> None:
        published.append(event)

    return ConversationProcessor(EventStore(ddb, settings.tables.events), ProjectionStore(ddb, settings.tables),
                                 BusinessDirectory(ddb, settings.tables), responder, publish, registry=registry)


def inbound(user: str, text: str, minutes: float = 0) -> Event:
    return new_event("MessageReceived", business_id="demo-salon", user_id=user, channel="websocket",
                     payload={"content": text}, occurred_at=T0 + timedelta(minutes=minutes))


async def drain(world: World, stream: str) -> None:
    """Hand every logged event of a stream to the processor, as the bridge would, until the
    replies it appended have come back too."""
    seen = 0
    while (events := await world.store.read(stream, after_seq=seen)):
        for event in events:
            await world.processor.handle(event)
        seen = events[-1].seq
