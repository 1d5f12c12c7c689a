"""Two delivery processes that both hold a reply (one evicted from the group without knowing yet):
the reply's claim lets one send it; the other waits and sends nothing. On moto's DynamoDB."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.events import ReplyGenerated, new_event
from agentstream.settings import Settings
from agentstream.streams.delivery import ExternalDelivery


@pytest.fixture
def store(moto_ddb: Any, moto_settings: Settings) -> EventStore:
    return EventStore(moto_ddb, moto_settings.tables.events)


async def sms_reply(store: EventStore, biz: str) -> ReplyGenerated:
    draft = new_event("ReplyGenerated", business_id=biz, user_id="+40711", channel="sms", payload={
        "content": "ok", "inReplyTo": "in-1", "sessionId": "", "model": "test", "deliverTo": {"via": "twilio"}})
    return (await store.append(draft)).event  # type: ignore[return-value]


class Vendor:
    """A Twilio that takes `seconds` to answer and counts what it was sent."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.sent: list[str] = []
        self._seconds = seconds

    async def send(self, reply: ReplyGenerated) -> str:
        self.sent.append(reply.eventId)
        await asyncio.sleep(self._seconds)
        return f"SM{len(self.sent)}"


async def test_two_owners_of_one_reply_send_it_once(store: EventStore, biz: str) -> None:
    reply, vendor = await sms_reply(store, biz), Vendor()
    first, second = (ExternalDelivery(store, vendor.send, poll_s=0.05) for _ in range(2))
    await asyncio.gather(first.deliver(reply), second.deliver(reply))
    assert vendor.sent == [reply.eventId]
    recorded = [e for e in await store.read(reply.streamId) if e.type == "ReplyDelivered"]
    assert [e.payload.replyEventId for e in recorded] == [reply.eventId]


async def test_a_claim_left_by_a_dead_process_runs_out_and_the_reply_is_sent(store: EventStore, biz: str) -> None:
    """The holder died between its send and its record: the next process sends once the claim has
    run out (the one send-twice window), and never before."""
    reply, vendor = await sms_reply(store, biz), Vendor(seconds=0)
    dead = ExternalDelivery(store, vendor.send, hold_ms=2000)
    assert await dead.log.claim(reply, "delivery-dead", 2000)
    waiting = asyncio.create_task(ExternalDelivery(store, vendor.send, hold_ms=2000, poll_s=0.05).deliver(reply))
    await asyncio.sleep(0.2)
    assert vendor.sent == [] and not waiting.done(), "sent while another process held the claim"
    await waiting
    assert vendor.sent == [reply.eventId]


async def test_the_same_process_retrying_keeps_its_claim(store: EventStore, biz: str) -> None:
    reply = await sms_reply(store, biz)
    delivery = ExternalDelivery(store, Vendor(seconds=0).send)
    assert await delivery._claimed(reply)  # noqa: SLF001
    assert await delivery._claimed(reply), "a retry of the same process claims again at once"  # noqa: SLF001
    assert not await ExternalDelivery(store, Vendor().send).log.claim(reply, "delivery-other", 20_000)


async def test_a_process_stalled_past_the_claim_sends_nothing_already_recorded(store: EventStore, biz: str) -> None:
    """It read "not delivered", stalled while another claimed, sent and recorded, and the claim
    ran out: it claims, finds the record and sends nothing."""
    reply, vendor = await sms_reply(store, biz), Vendor(seconds=0)
    await ExternalDelivery(store, vendor.send, hold_ms=1).deliver(reply)
    await asyncio.sleep(0.01)  # the first process's claim has run out
    stalled = ExternalDelivery(store, vendor.send)
    assert not await stalled._claimed(reply)  # noqa: SLF001
    assert vendor.sent == [reply.eventId]


async def test_a_reply_marked_sent_by_a_process_that_died_is_recorded_not_sent_again(store: EventStore, biz: str) -> None:
    """The holder died after the vendor's answer was marked on the claim, before its record: the
    next process records it with the vendor's id at once (no wait for the claim to run out) and
    sends nothing."""
    reply, vendor = await sms_reply(store, biz), Vendor(seconds=0)
    dead = ExternalDelivery(store, vendor.send, hold_ms=60_000)
    assert await dead._claimed(reply)  # noqa: SLF001
    await dead._send_once(reply)  # noqa: SLF001  (then it dies: no record)
    await asyncio.wait_for(ExternalDelivery(store, vendor.send, hold_ms=60_000).deliver(reply), timeout=10)
    assert vendor.sent == [reply.eventId]
    recorded = [e for e in await store.read(reply.streamId) if e.type == "ReplyDelivered"]
    assert [e.payload.externalId for e in recorded] == ["SM1"]


async def test_a_retry_after_a_failed_write_sends_nothing_again(store: EventStore, biz: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB failed right after the vendor accepted the reply (the record's write): the
    runner's retry writes it and sends nothing again."""
    reply, vendor = await sms_reply(store, biz), Vendor(seconds=0)
    delivery = ExternalDelivery(store, vendor.send)
    record, failures = delivery.log.record, [RuntimeError("throttled")]

    async def failing_once(*args: Any) -> None:
        if failures:
            raise failures.pop()
        await record(*args)

    monkeypatch.setattr(delivery.log, "record", failing_once)
    with pytest.raises(RuntimeError):
        await delivery.deliver(reply)
    await delivery.deliver(reply, attempt=2)
    assert vendor.sent == [reply.eventId]
    recorded = [e for e in await store.read(reply.streamId) if e.type == "ReplyDelivered"]
    assert [(e.payload.externalId, e.payload.attempts) for e in recorded] == [("SM1", 2)]


async def test_the_record_is_written_after_the_reply_without_reading_the_head(store: EventStore, biz: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply is delivered right after it is appended, so it is the head: the record goes at the
    next seq without a head read; if the customer wrote in between, it goes after that."""
    reply, vendor = await sms_reply(store, biz), Vendor(seconds=0)
    head, reads = store.head, []

    async def counted(stream: str) -> int:
        reads.append(stream)
        return await head(stream)

    monkeypatch.setattr(store, "head", counted)
    await ExternalDelivery(store, vendor.send).deliver(reply)
    assert reads == []
    assert [(e.type, e.seq) for e in await store.read(reply.streamId)][-1] == ("ReplyDelivered", reply.seq + 1)

    later = await sms_reply(store, biz)
    inbound = new_event("MessageReceived", business_id=biz, user_id="+40711", channel="sms", payload={"content": "și?"})
    await store.append(inbound)  # the customer wrote before the reply was delivered
    await ExternalDelivery(store, vendor.send).deliver(later)
    assert [e.type for e in await store.read(reply.streamId, after_seq=later.seq)] == ["MessageReceived", "ReplyDelivered"]
