"""A widget conversation at rest: the gateway appends the customer's next message after its own
delivery record without reading the head, and a wrong guess never leaves a gap (moto)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.ingest import Ingestor, InboundMessage
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.events import Event, new_event, reply_event_id
from agentstream.metrics import APPEND_CONFLICTS
from agentstream.settings import Settings
from agentstream.streams.delivery import LiveReply, SocketDelivery
from tests.sizes import size
from tests.unit.test_socket_delivery import Socket


class HeadCountingStore(EventStore):
    """The events table, counting the head reads."""

    head_reads = 0

    async def head(self, stream: str) -> int:
        self.head_reads += 1
        return await super().head(stream)


def message(business: str, user: str = "u1", text: str = "salut") -> Event:
    return new_event("MessageReceived", business_id=business, user_id=user, channel="websocket", payload={"content": text})


def conflicts() -> float:
    return APPEND_CONFLICTS.labels("MessageReceived")._value.get()


async def test_a_right_guess_appends_without_reading_the_head(moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    store = HeadCountingStore(moto_ddb, moto_settings.tables.events)
    for n in range(3):
        await store.append(message(biz, text=str(n)))
    reads, lost = store.head_reads, conflicts()
    appended = await store.append(message(biz, text="3"), head=3, guessed=True)
    assert appended.event.seq == 4 and store.head_reads == reads and conflicts() == lost


async def test_a_guess_too_low_appends_at_the_head(moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    store = EventStore(moto_ddb, moto_settings.tables.events)
    for n in range(3):
        await store.append(message(biz, text=str(n)))
    lost = conflicts()
    assert (await store.append(message(biz, text="3"), head=1, guessed=True)).event.seq == 4
    assert conflicts() == lost + 1
    assert [e.payload.content for e in await store.read(f"{biz}#u1")] == ["0", "1", "2", "3"]


async def test_a_guess_too_high_leaves_no_gap(moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    """Too high: another process's guess after the stream was emptied (`forget`), say."""
    store = EventStore(moto_ddb, moto_settings.tables.events)
    assert (await store.append(message(biz, text="a"), head=7, guessed=True)).event.seq == 1
    await store.append(message(biz, text="b"))
    assert (await store.append(message(biz, text="c"), head=5, guessed=True)).event.seq == 3
    assert [(e.seq, e.payload.content) for e in await store.read(f"{biz}#u1")] == [(1, "a"), (2, "b"), (3, "c")]


async def test_a_resent_message_with_a_wrong_guess_is_the_first_one(moto_ddb: Any, moto_settings: Settings,
                                                                   biz: str) -> None:
    store = EventStore(moto_ddb, moto_settings.tables.events)
    first = await store.append(message(biz), external_id="websocket:u1:m1")
    again = await store.append(message(biz), external_id="websocket:u1:m1", head=4, guessed=True)
    assert again.duplicate and again.event.eventId == first.event.eventId
    assert [e.seq for e in await store.read(f"{biz}#u1")] == [1]


@given(guesses=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=12)), min_size=1, max_size=8))
@hsettings(max_examples=size(10, 50), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_any_guesses_give_gapless_seqs_in_append_order(moto_ddb: Any, moto_settings: Settings,
                                                             guesses: list[int | None]) -> None:
    store, biz = EventStore(moto_ddb, moto_settings.tables.events), f"b{uuid.uuid4().hex[:8]}"
    for n, guess in enumerate(guesses):
        await store.append(message(biz, text=str(n)), head=guess, guessed=guess is not None)
    logged = await store.read(f"{biz}#u1")
    assert [(e.seq, e.payload.content) for e in logged] == [(n + 1, str(n)) for n in range(len(guesses))]


async def _answered(store: EventStore, inbound: Event) -> Event:
    """The worker's reply to `inbound`, logged."""
    reply = new_event("ReplyGenerated", event_id=reply_event_id(inbound.eventId), business_id=inbound.businessId,
                      user_id=inbound.userId, channel="websocket",
                      payload={"content": "Bună!", "inReplyTo": inbound.eventId, "sessionId": "s1", "model": "m"})
    return (await store.append(reply, external_id=f"reply:{inbound.eventId}")).event


def _said(biz: str, n: int) -> InboundMessage:
    return InboundMessage(biz, "u1", "websocket", f"m{n}", f"message {n}", reply_to={"socket": "widget"})


@dataclass
class Gateway:
    """A gateway's pieces that share its guesses, one conversation at rest (message 1 answered,
    its reply sent to the customer's socket and recorded)."""

    store: HeadCountingStore
    ingestor: Ingestor
    delivery: SocketDelivery
    hub: SocketHub
    socket: Socket


async def _at_rest(ddb: Any, settings: Settings, biz: str) -> Gateway:
    store, heads, hub, socket = HeadCountingStore(ddb, settings.tables.events), SettledHeads(), SocketHub(), Socket()
    ingestor, delivery = Ingestor(store, heads), SocketDelivery(store, hub, heads)
    await hub.add(f"{biz}#u1", socket)  # type: ignore[arg-type]
    inbound = (await ingestor.ingest(_said(biz, 1))).event
    await delivery.deliver(LiveReply(await _answered(store, inbound), first=True))
    return Gateway(store, ingestor, delivery, hub, socket)


async def test_a_conversation_at_rest_takes_the_next_message_without_a_head_read(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    g = await _at_rest(moto_ddb, moto_settings, biz)
    reads = g.store.head_reads
    second = (await g.ingestor.ingest(_said(biz, 2))).event
    assert second.seq == 4 and g.store.head_reads == reads  # after message 1, its reply and the record
    third = (await g.ingestor.ingest(_said(biz, 3))).event  # before the reply to the second: the head is read
    assert third.seq == 5 and g.store.head_reads == reads + 1
    assert [e.type for e in await g.store.read(f"{biz}#u1")] == [
        "MessageReceived", "ReplyGenerated", "ReplyDelivered", "MessageReceived", "MessageReceived"]


async def test_an_outbound_event_this_gateway_does_not_record_drops_the_guess(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    g = await _at_rest(moto_ddb, moto_settings, biz)
    await g.hub.remove(f"{biz}#u1", g.socket)  # type: ignore[arg-type]
    owner = new_event("OwnerReplied", business_id=biz, user_id="u1", channel="websocket",
                      payload={"sessionId": "s1", "content": "Vă sun eu.", "author": "Ana"})
    await g.delivery.deliver(LiveReply((await g.store.append(owner)).event, first=True))  # no socket here: not recorded
    reads, lost = g.store.head_reads, conflicts()
    assert (await g.ingestor.ingest(_said(biz, 2))).event.seq == 5
    assert g.store.head_reads == reads + 1 and conflicts() == lost  # the head read, not a failed write


class RecordsWhileAppending(EventStore):
    """A delivery record settles its conversation while the customer's next message is being
    appended (both in one gateway): the message then goes after the record."""

    def __init__(self, ddb: Any, table: str, heads: SettledHeads) -> None:
        super().__init__(ddb, table)
        self.heads = heads

    async def append(self, event: Event, *args: Any, **kwargs: Any) -> Any:
        if event.type == "MessageReceived":
            self.heads.settle(event.streamId, await self.head(event.streamId))
        return await super().append(event, *args, **kwargs)


async def test_a_message_appended_after_a_record_leaves_no_guess(moto_ddb: Any, moto_settings: Settings,
                                                                biz: str) -> None:
    heads = SettledHeads()
    store = RecordsWhileAppending(moto_ddb, moto_settings.tables.events, heads)
    appended = (await Ingestor(store, heads).ingest(_said(biz, 1))).event
    assert appended.seq == 1 and heads.take(appended.streamId) is None
