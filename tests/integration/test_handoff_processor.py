"""The worker's processor with a handoff, on the real local DynamoDB: who answers is decided by the
log, the customer is told once, the owner is told, and a replay verifies clean."""

from __future__ import annotations

from agentstream.adapters.llm import FALLBACK, Answer
from agentstream.events import Event, new_event
from agentstream.projections.context import ReplyContext
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer
from tests.integration.world import World, drain, inbound, new_processor

STREAM = "demo-salon#{}"


def system(kind: str, user: str, **payload: str) -> Event:
    return new_event(kind, business_id="demo-salon", user_id=user, channel="system", payload=payload)


def owner_message(user: str, session_id: str, text: str) -> Event:
    return new_event("OwnerReplied", business_id="demo-salon", user_id=user, channel="websocket",
                     payload={"sessionId": session_id, "content": text, "author": "Ana", "deliverTo": {"socket": "widget"}})


async def log_of(world: World, user: str) -> list[Event]:
    return await world.store.read(STREAM.format(user), after_seq=0)


def replies_to(events: list[Event]) -> dict[str, Event]:
    return {e.payload.inReplyTo: e for e in events if e.type == "ReplyGenerated"}


async def session_id(world: World, user: str) -> str:
    return next(e.payload.sessionId for e in await log_of(world, user) if e.type == "ReplyGenerated")


async def verify_clean(world: World, user: str) -> None:
    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", user), verify=True)
    assert report.differences == []


async def test_a_customer_who_asks_for_a_person_is_told_once_and_the_ai_stays_quiet(world: World) -> None:
    told: list[Event] = []

    async def on_handoff(event: Event) -> None:
        told.append(event)

    world.processor._replier.on_handoff = on_handoff  # noqa: SLF001
    await world.store.append(inbound("h1", "Bună ziua, aveți loc mâine?"))
    await drain(world, STREAM.format("h1"))
    asked = await world.store.append(inbound("h1", "vreau să vorbesc cu cineva", 1))
    await drain(world, STREAM.format("h1"))
    events = await log_of(world, "h1")
    notice = replies_to(events)[asked.event.eventId]
    assert notice.payload.model == "handoff" and "coleg" in notice.payload.content
    handoffs = [e for e in events if e.type == "HandoffRequested"]
    assert [(h.payload.by, h.seq > asked.event.seq) for h in handoffs] == [("customer", True)]
    assert [e.eventId for e in told] == [handoffs[0].eventId]
    calls = world.responder.calls
    quiet = await world.store.append(inbound("h1", "mai e cineva acolo?", 2))
    await drain(world, STREAM.format("h1"))
    assert quiet.event.eventId not in replies_to(await log_of(world, "h1")) and world.responder.calls == calls
    sid = await session_id(world, "h1")
    person = await world.store.append(owner_message("h1", sid, "Bună, sunt Ana. Da, avem loc la 10."))
    await world.store.append(system("HandoffReleased", "h1", sessionId=sid, by="owner"))
    await drain(world, STREAM.format("h1"))
    assert person.event.eventId in [p.eventId for p in world.published]
    answered = await world.store.append(inbound("h1", "mulțumesc, la ce oră închideți?", 3))
    await drain(world, STREAM.format("h1"))
    assert answered.event.eventId in replies_to(await log_of(world, "h1"))
    messages = await world.processor._writer.projections.session_messages(sid)
    authors = [(m["type"], m["metadata"].get("author")) for m in messages]
    assert ("agent", "human") in authors and authors.count(("user", None)) == 4
    await verify_clean(world, "h1")


async def test_an_owner_handoff_sends_one_notice_in_the_customers_language(world: World) -> None:
    await world.store.append(inbound("h2", "Hello, are you open on Sunday?"))
    await drain(world, STREAM.format("h2"))
    sid = await session_id(world, "h2")
    handoff = await world.store.append(system("HandoffRequested", "h2", sessionId=sid, by="owner", reason="VIP"))
    await drain(world, STREAM.format("h2"))
    await world.processor.handle(handoff.event)  # a redelivery appends no second notice
    notices = [e for e in await log_of(world, "h2") if e.type == "HandoffNoticeSent"]
    assert len(notices) == 1 and "team" in notices[0].payload.content
    assert notices[0].channel == "websocket" and notices[0].payload.deliverTo == {}
    assert notices[0].eventId in [p.eventId for p in world.published]
    await world.store.append(inbound("h2", "hello?", 1))
    await drain(world, STREAM.format("h2"))
    assert len(replies_to(await log_of(world, "h2"))) == 1
    await verify_clean(world, "h2")


class FailingResponder:
    async def answer(self, ctx: ReplyContext) -> Answer:
        return Answer(FALLBACK["ro"], "gpt", 1, fallback=True)

    async def close(self) -> None:
        """Nothing to release."""


async def test_the_models_fallback_hands_the_conversation_to_a_person(world: World) -> None:
    world.processor = new_processor(world.ddb, world.settings, FailingResponder(), world.published)
    await world.store.append(inbound("h3", "aveți loc azi?"))
    await drain(world, STREAM.format("h3"))
    await world.store.append(inbound("h3", "alo?", 1))
    await drain(world, STREAM.format("h3"))
    events = await log_of(world, "h3")
    assert [e.payload.by for e in events if e.type == "HandoffRequested"] == ["responder"]
    assert len(replies_to(events)) == 1  # the second inbound came after the handoff: no AI reply
    assert [e.payload.reason for e in events if e.type == "HandoffRequested"] == ["fallback"]
    await verify_clean(world, "h3")
