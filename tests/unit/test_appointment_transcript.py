"""The messages the business starts about an appointment (a proposal, a confirmation, a decline,
a cancellation) are in the conversation: in the owner's inbox transcript, in order, as the
business's, and among the earlier turns the model reads on the customer's next message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.llm import OfflineResponder
from agentstream.events import Event, ReplyGenerated, new_event
from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import NO_SESSION, fold
from agentstream.streams.appointment_requests import appointment_id, request_event
from agentstream.streams.conversations import ConversationProcessor
from agentstream.wiring import new_explainer
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture
from tests.unit.test_inbox_sign_out import sign_in

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
PROPOSED = "Vă putem primi joi la 11:30. Răspundeți „da” pentru a confirma."


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ev(kind: str, seq: int, when: float, **payload: Any) -> Event:
    return new_event(kind, business_id="b", user_id="u", channel="whatsapp", occurred_at=at(when),
                     payload=payload).with_seq(seq)


def appointment(kind: str, seq: int, when: float, content: str, by: str = "owner", **more: Any) -> Event:
    return ev(kind, seq, when, appointmentId="a1", by=by, content=content, deliverTo={"to": "407"}, **more)


def test_each_business_message_about_an_appointment_is_a_message_and_a_turn_of_the_session() -> None:
    asked = ev("MessageReceived", 1, 0, content="Mă puteți programa joi la 10?", replyTo={"to": "407"})
    events = [asked, ev("ReplyGenerated", 2, 0.5, content="Un coleg vă va confirma.", inReplyTo=asked.eventId,
                        sessionId="", model="m"),
              appointment("AppointmentProposed", 3, 5, PROPOSED, at="2026-12-03T11:30:00+02:00"),
              appointment("AppointmentConfirmed", 4, 6, "Programarea este confirmată.", by="customer",
                          at="2026-12-03T11:30:00+02:00", minutes=30),
              appointment("AppointmentCancelled", 5, 7, "Programarea a fost anulată."),
              appointment("AppointmentDeclined", 6, 8, "Nu vă putem primi atunci."),
              appointment("AppointmentNoShow", 7, 9, "")]
    memory, sessions, messages = fold(events, FoldConfig(idle_minutes=60), "b", "u")
    sid = memory["sessionContext"]["sessionId"]
    shown = sorted(messages.values(), key=lambda m: m["seq"])
    assert [(m["seq"], m["type"], m["sessionId"]) for m in shown] == [(s, "user" if s == 1 else "agent", sid) for s in range(1, 7)]
    assert [m["content"] for m in shown[2:]] == [PROPOSED, "Programarea este confirmată.", "Programarea a fost anulată.",
                                                 "Nu vă putem primi atunci."]
    assert [m["metadata"]["author"] for m in shown[2:]] == ["human", "ai", "human", "human"]  # the customer's yes: ours, automatic
    assert {m["metadata"]["kind"] for m in shown[2:]} == {"appointment"}
    turns = memory["sessionContext"]["lastMessages"]
    assert [(t["role"], t["content"]) for t in turns][-2:] == [("agent", "Programarea a fost anulată."),
                                                              ("agent", "Nu vă putem primi atunci.")]
    assert sessions[sid]["lastMessageAt"].startswith("2026-12-01T09:08")


def test_a_message_sent_after_the_session_went_idle_shows_in_the_customers_last_conversation_only() -> None:
    asked = ev("MessageReceived", 1, 0, content="Mă puteți programa joi la 10?")
    late = appointment("AppointmentProposed", 2, 300, PROPOSED, at="2026-12-03T11:30:00+02:00")  # the session idled out
    memory, sessions, messages = fold([asked, late], FoldConfig(idle_minutes=60), "b", "u")
    sid = memory["sessionContext"]["sessionId"]
    assert messages[late.eventId]["sessionId"] == sid and messages[late.eventId]["content"] == PROPOSED
    assert [t["role"] for t in memory["sessionContext"]["lastMessages"]] == ["user"]  # no turn of a finished talk
    assert sessions[sid]["lastMessageAt"].startswith("2026-12-01T09:00")
    _, _, alone = fold([late.model_copy(update={"seq": 1})], FoldConfig(), "b", "u")
    assert alone[late.eventId]["sessionId"] == NO_SESSION  # no conversation yet: kept, shown nowhere


async def test_the_owner_sees_the_proposal_confirmation_and_cancellation_in_the_inbox_and_the_model_reads_them(
        moto_gateway: MotoGateway) -> None:
    gw, biz = moto_gateway, moto_gateway.business
    day = (datetime.now(timezone.utc) + timedelta(days=10)).date()
    await gw.d.ddb.put_item(TableName=gw.d.settings.tables.business_info, Item=to_item({
        "businessId": biz, "name": "Salon", "businessType": "salon", "language": "ro", "timezone": "Europe/Bucharest",
        "slotMinutes": 30, "bookingCapacity": 1, "openingHours": {d: [["08:00", "20:00"]] for d in
                                                                  ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}))
    store, user = gw.d.store, "ana"
    processor = ConversationProcessor(store, ProjectionStore(gw.d.ddb, gw.d.settings.tables),
                                      BusinessDirectory(gw.d.ddb, gw.d.settings.tables), OfflineResponder(), _no_publish)

    async def drain() -> list[Event]:
        for event in await store.read(f"{biz}#{user}"):
            await processor.handle(event)
        return await store.read(f"{biz}#{user}")

    asked = (await store.append(new_event("MessageReceived", business_id=biz, user_id=user, channel="rest",
                                           payload={"content": "Mă puteți programa pentru tuns?", "replyTo": {"to": user}}))).event
    await store.append(request_event(asked, {"at": f"{day.isoformat()}T10:00:00+02:00", "service": "tuns"}))  # type: ignore[arg-type]
    await drain()
    aid, auth = appointment_id(asked.eventId), {"Authorization": f"Bearer {gw.api_key}"}
    for action, body in (("propose", {"at": f"{day.isoformat()}T11:30"}), ("confirm", {}), ("cancel", {})):
        done = await gw.http.post(f"/v1/businesses/{biz}/appointments/{aid}/{action}", json=body, headers=auth)
        assert done.status_code == 202, done.text
        await drain()
    sent = [e.payload.content for e in await store.read(f"{biz}#{user}") if e.type.startswith("Appointment") and e.payload.content]
    assert len(sent) == 3 and "11:30" in sent[0]

    await sign_in(gw.http, gw.api_key)
    sid = (await processor._states.load(asked))["conversation"]["sessionContext"]["sessionId"]  # noqa: SLF001
    page = await gw.http.get(f"/inbox/conversations/{sid}")
    assert page.status_code == 200
    text = page.text.replace("&#34;", '"').replace("&#39;", "'")
    assert all(s in text for s in sent), "each message the business sent is in the transcript"
    assert text.index(sent[0]) < text.index(sent[1]) < text.index(sent[2])

    await store.append(new_event("MessageReceived", business_id=biz, user_id=user, channel="rest",
                                 payload={"content": "Bine, mulțumesc", "replyTo": {"to": user}}))
    reply = [e for e in await drain() if isinstance(e, ReplyGenerated)][-1]
    found = await new_explainer(gw.d.ddb, gw.d.settings).explain(reply.eventId)
    prompt = found.prompt
    assert found.reproduced, found.differences()
    assert {"role": "assistant", "content": sent[2]} in prompt and {"role": "assistant", "content": sent[1]} in prompt


async def _no_publish(event: Event, first: bool = False) -> None:
    pass
