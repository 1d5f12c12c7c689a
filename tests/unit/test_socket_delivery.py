"""A gateway's widget delivery: a reply's first publication goes to the socket without reading
the log for a delivery record; a reply published again is sent only if the log has none; a
socket never gets one reply twice. On moto, with a socket that records its frames."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.events import Event, ReplyDelivered, new_event, reply_event_id
from agentstream.settings import Settings
from agentstream.streams.delivery import LiveReply, SocketDelivery


class Socket:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_json(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)


class CountingStore(EventStore):
    """The events table, counting the reads for a delivery record."""

    looked_up = 0

    async def has(self, business_id: str, external_id: str) -> bool:
        self.looked_up += 1
        return await super().has(business_id, external_id)


async def _logged_reply(store: EventStore, biz: str, user: str) -> Event:
    inbound = (await store.append(new_event("MessageReceived", business_id=biz, user_id=user, channel="websocket",
                                            payload={"content": "Bună ziua"}))).event
    reply = new_event("ReplyGenerated", event_id=reply_event_id(inbound.eventId), business_id=biz, user_id=user,
                      channel="websocket", payload={"content": "Bună! Cu ce vă ajut?", "inReplyTo": inbound.eventId,
                                                    "sessionId": "s1", "model": "m"})
    return (await store.append(reply)).event


async def _connected(ddb: Any, settings: Settings, biz: str) -> tuple[CountingStore, Event, SocketHub, Socket]:
    """A logged reply, and its customer's socket open on this gateway."""
    store = CountingStore(ddb, settings.tables.events)
    reply = await _logged_reply(store, biz, "u1")
    hub, socket = SocketHub(), Socket()
    await hub.add(reply.streamId, socket)  # type: ignore[arg-type]
    return store, reply, hub, socket


async def _delivered(store: EventStore, reply: Event) -> list[Event]:
    return [e for e in await store.read(reply.streamId) if isinstance(e, ReplyDelivered)]


async def test_a_first_publication_is_sent_without_reading_for_its_record(moto_ddb: Any, moto_settings: Settings,
                                                                        biz: str) -> None:
    store, reply, hub, socket = await _connected(moto_ddb, moto_settings, biz)
    await SocketDelivery(store, hub).deliver(LiveReply(reply, first=True))
    assert [f["eventId"] for f in socket.frames] == [reply.eventId]
    assert store.looked_up == 0
    assert len(await _delivered(store, reply)) == 1


async def test_a_reply_published_again_is_sent_only_if_not_delivered(moto_ddb: Any, moto_settings: Settings,
                                                                   biz: str) -> None:
    store, reply, hub, first = await _connected(moto_ddb, moto_settings, biz)
    later = Socket()
    delivery = SocketDelivery(store, hub)
    await delivery.deliver(LiveReply(reply, first=True))
    await delivery.deliver(LiveReply(reply, first=True))  # the same record twice (a producer's retry)
    await hub.remove(reply.streamId, first)  # type: ignore[arg-type]
    await hub.add(reply.streamId, later)  # type: ignore[arg-type]
    await delivery.deliver(LiveReply(reply))  # a worker that took the conversation over publishes it again
    assert [f["eventId"] for f in first.frames] == [reply.eventId] and later.frames == []
    assert store.looked_up == 1 and len(await _delivered(store, reply)) == 1


async def test_a_reply_published_again_before_delivery_is_sent(moto_ddb: Any, moto_settings: Settings,
                                                             biz: str) -> None:
    store, reply, hub, socket = await _connected(moto_ddb, moto_settings, biz)
    await SocketDelivery(store, hub).deliver(LiveReply(reply))
    assert [f["eventId"] for f in socket.frames] == [reply.eventId] and store.looked_up == 1
