"""Message kinds through the worker on the real local DynamoDB server: a reaction, a location
and a status get no reply, a button is answered as its title, and replay (`--verify` clean),
explain and shadow agree; the inbox shows the reaction, the read reply and a failed one."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta

from agentstream.adapters.http import inbox_data
from agentstream.adapters.http.inbox_routes import _fragment
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import Event, ReplyGenerated, new_event
from agentstream.streams.replay import Scope
from agentstream.streams.shadow import select_inbounds
from agentstream.wiring import gateway_deps, new_explainer, new_replayer, shadow_stores
from tests.integration.world import T0, World, drain


def customer(user: str, minutes: float, content: str, kind: str = "text", **extra: object) -> Event:
    return new_event("MessageReceived", business_id="demo-salon", user_id=user, channel="whatsapp",
                     payload={"content": content, "kind": kind, **extra}, occurred_at=T0 + timedelta(minutes=minutes))


async def test_only_text_and_buttons_are_answered_and_replay_agrees(world: World) -> None:
    user, stream = "kinds-1", "demo-salon#kinds-1"
    hello = (await world.store.append(customer(user, 0, "Bună, aveți loc mâine?"))).event
    await drain(world, stream)
    (reply,) = [e for e in await world.store.read(stream) if isinstance(e, ReplyGenerated)]
    later = [customer(user, 1, "👍", "reaction", reactsTo=reply.eventId),
             customer(user, 2, "Location: 44.43, 26.10 — Str. X", "location"),
             new_event("ReplyStatusReported", business_id="demo-salon", user_id=user, channel="whatsapp",
                       occurred_at=T0 + timedelta(minutes=3), payload={
                           "replyEventId": reply.eventId, "status": "read", "at": "2026-11-24T08:03:00.000Z",
                           "externalId": "wamid.r1"}),
             customer(user, 4, "Da, rezerv", "button", payloadId="BOOK_YES")]
    for event in later:
        await world.store.append(event)
    await drain(world, stream)

    logged = await world.store.read(stream)
    by_id = {e.eventId: e for e in logged}
    answered = [by_id[r.payload.inReplyTo] for r in logged if isinstance(r, ReplyGenerated)]
    assert [(e.payload.kind, e.payload.content) for e in answered] == [("text", hello.payload.content),
                                                                      ("button", "Da, rezerv")]
    assert world.responder.calls == 2
    memory = await ProjectionStore(world.ddb, world.settings.tables).load_memory("demo-salon", user)
    assert memory["replyStatus"][reply.eventId]["status"] == "read"
    messages = await ProjectionStore(world.ddb, world.settings.tables).session_messages(
        memory["sessionContext"]["sessionId"])
    reaction = [m for m in messages if (m.get("metadata") or {}).get("kind") == "reaction"]
    assert [(m["content"], m["metadata"]["reactsTo"]) for m in reaction] == [("👍 (reaction)", reply.eventId)]

    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", user), verify=True)
    assert report.events == len(logged) and report.differences == []

    explained = await new_explainer(world.ddb, world.settings).explain(later[0].eventId)
    assert explained.reply is None and explained.differences() == ["the message is a reaction: it gets no reply"]
    shadow = shadow_stores(world.ddb, world.settings)
    picked = [i.eventId for i in await select_inbounds(shadow.log, shadow.messages, "demo-salon", None, 1000)
              if i.streamId == stream]
    assert picked == [e.eventId for e in answered]  # shadow compares only what was answered


async def test_the_inbox_shows_a_reaction_a_read_reply_and_a_vendor_failure(world: World) -> None:
    user, stream = "kinds-2", "demo-salon#kinds-2"
    await world.store.append(customer(user, 0, "Bună, aveți loc mâine?"))
    await drain(world, stream)
    (first,) = [e for e in await world.store.read(stream) if isinstance(e, ReplyGenerated)]
    await world.store.append(customer(user, 1, "👍", "reaction", reactsTo=first.eventId))
    await world.store.append(status(user, first.eventId, "read", 2))
    await world.store.append(customer(user, 3, "Și poimâine?"))
    await drain(world, stream)
    second = [e for e in await world.store.read(stream) if isinstance(e, ReplyGenerated)][-1]
    await world.store.append(status(user, second.eventId, "failed", 4, "Re-engagement message"))
    await drain(world, stream)

    async with AsyncExitStack() as stack:
        d = await gateway_deps(stack, world.settings)
        memory = await d.projections.load_memory("demo-salon", user)
        session = await d.projections.session(memory["sessionContext"]["sessionId"])
        page = " ".join(_fragment("inbox_messages.html", c=await inbox_data.conversation(d, session)).split())
        rows = [c for c in await inbox_data.conversations(d, "demo-salon") if c.view["userId"] == user]
    assert 'title="the customer\'s reaction">👍</span>' in page
    assert '<span class="delivery read">read' in page
    assert '<span class="delivery failed">not delivered: Re-engagement message</span>' in page
    assert rows and rows[0].undelivered is not None and "not delivered" in _fragment("inbox_rows.html", rows=rows)


def status(user: str, reply_id: str, what: str, minutes: float, error: str | None = None) -> Event:
    at = T0 + timedelta(minutes=minutes)
    return new_event("ReplyStatusReported", business_id="demo-salon", user_id=user, channel="whatsapp", occurred_at=at,
                     payload={"replyEventId": reply_id, "status": what, "at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                              "externalId": f"wamid.{reply_id}", "error": error})
