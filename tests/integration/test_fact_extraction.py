"""Optional model-based fact extraction (issue 14): with FACTS_MODEL_EXTRACTION and a real model,
the worker's processor asks the model (a real `openai` client against the local fake server, which
answers the extraction prompt with canned JSON) for an inbound's facts after its reply and appends
one FactsExtracted, folded into the facts with source "model"; a redelivery asks nothing again;
off by default; bad JSON or a failing model appends nothing and the reply still goes out; a replay
folds the logged facts without calling the model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.llm import make_responder
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.bench import model_server
from agentstream.bench.model_server import ModelServer
from agentstream.events import Event, FactsExtracted, new_event, utc_now
from agentstream.projections.facts import FACTS, business_zone, current_facts
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.fact_extraction import SYSTEM_PROMPT, facts_event_id, make_fact_extractor
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer
from tests.integration.world import World

pytestmark = pytest.mark.integration
ZONE = business_zone("Europe/Bucharest")


@dataclass
class FakeModel:
    """The bench's fake model server; an extraction request gets `facts` as its answer
    (None: the server fails it with a 500)."""

    server: ModelServer
    facts: str | None = '{"facts": []}'

    def extraction_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.server.behaviour.requests if _is_extraction(r["body"])]

    def reply_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.server.behaviour.requests if not _is_extraction(r["body"])]


def _is_extraction(body: dict[str, Any]) -> bool:
    return any(m.get("role") == "system" and m.get("content") == SYSTEM_PROMPT for m in body.get("messages", []))


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    fake: FakeModel
    reply = model_server._answer  # noqa: SLF001 - extended here only, for this test's extraction prompt

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        out = reply(body)
        if _is_extraction(body):
            if fake.facts is None:
                raise RuntimeError("injected extraction failure")  # the server answers 500
            out["choices"][0]["message"]["content"] = fake.facts
        return out

    monkeypatch.setattr(model_server, "_answer", answer)
    with ModelServer() as server:
        fake = FakeModel(server)
        yield fake


def model_settings(monkeypatch: pytest.MonkeyPatch, model: FakeModel, enabled: bool | None) -> Settings:
    """The test's settings with a real model (the fake server) and extraction on, off or unset."""
    env = {"OPENAI_API_KEY": "sk-test-not-real", "OPENAI_BASE_URL": model.server.base_url,
           "OPENAI_MODEL": "local-model", "OPENAI_MAX_RETRIES": "0", "OPENAI_TIMEOUT": "5"}
    if enabled is not None:
        env["FACTS_MODEL_EXTRACTION"] = "true" if enabled else "false"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@dataclass
class Worker:
    processor: ConversationProcessor
    store: EventStore
    close: Any


def worker(world: World, settings: Settings) -> Worker:
    """The processor as run_worker builds it: the responder, and the extractor when enabled."""
    store = EventStore(world.ddb, settings.tables.events)
    responder = make_responder(settings)

    async def publish(event: Event, first: bool = False) -> None:
        world.published.append(event)

    processor = ConversationProcessor(store, ProjectionStore(world.ddb, settings.tables),
                                      BusinessDirectory(world.ddb, settings.tables), responder, publish,
                                      after_reply=make_fact_extractor(settings, store, responder))
    return Worker(processor, store, responder.close)


async def drain(w: Worker, stream: str) -> None:
    """Every logged event of the stream handed to the processor, as the bridge would."""
    seen = 0
    while (events := await w.store.read(stream, after_seq=seen)):
        for event in events:
            await w.processor.handle(event)
        seen = events[-1].seq


def tomorrow_at_ten() -> str:
    return f"{(utc_now().astimezone(ZONE) + timedelta(days=1)).date().isoformat()}T10:00"


async def said(w: Worker, user: str, text: str) -> Event:
    event = new_event("MessageReceived", business_id="demo-salon", user_id=user, channel="websocket",
                      payload={"content": text})
    return (await w.store.append(event)).event


async def facts_of(world: World, user: str) -> dict[str, Any]:
    state = (await ProjectionStore(world.ddb, world.settings.tables).load_states((FACTS,), "demo-salon", user))["facts"]
    assert state is not None
    return state


async def test_extracted_facts_are_logged_once_folded_as_model_facts_and_replayed_without_the_model(
        world: World, model: FakeModel, monkeypatch: pytest.MonkeyPatch) -> None:
    at = tomorrow_at_ten()
    model.facts = orjson.dumps({"facts": [
        {"kind": "name", "value": " Maria Ionescu "},
        {"kind": "appointment", "value": {"at": at, "service": "manichiură"}},
        {"kind": "phone", "value": "not a phone"},  # clean_value refuses it: dropped
        {"kind": "shoe size", "value": "38"},  # not a kind: dropped
        {"kind": "name", "value": "Maria Ionescu"},  # the same fact again: once
    ]}).decode()
    w = worker(world, model_settings(monkeypatch, model, enabled=True))
    inbound = await said(w, "m1", "Bună, vin și eu pe la voi")
    await w.processor.handle(inbound)

    log = await w.store.read(inbound.streamId)
    assert [e.type for e in log] == ["MessageReceived", "ReplyGenerated", "FactsExtracted"]
    extracted = log[2]
    assert isinstance(extracted, FactsExtracted) and extracted.eventId == facts_event_id(inbound.eventId)
    appointment = {"at": datetime.fromisoformat(at).replace(tzinfo=ZONE).isoformat(timespec="seconds"), "service": "manichiură"}
    assert [(f.kind, f.value) for f in extracted.payload.facts] == [("name", "Maria Ionescu"), ("appointment", appointment)]
    assert extracted.payload.model == "local-model" and extracted.payload.sourceEventId == inbound.eventId
    assert world.published[-1].eventId == log[1].eventId, "the reply went out"

    asked = model.extraction_requests()
    assert len(asked) == 1 and len(model.reply_requests()) == 1
    assert asked[0]["response_format"] == {"type": "json_object"}
    prompt = asked[0]["messages"][1]["content"]
    local = inbound.occurredAt.astimezone(ZONE).isoformat(timespec="minutes")
    assert local in prompt and "Europe/Bucharest" in prompt and "Bună, vin și eu pe la voi" in prompt

    await drain(w, inbound.streamId)
    facts = current_facts(await facts_of(world, "m1"))
    by_kind = {f["kind"]: f for f in facts}
    assert by_kind["name"]["value"] == "Maria Ionescu" and by_kind["appointment"]["value"] == appointment
    assert all(by_kind[k]["source"] == "model" and by_kind[k]["sourceEventId"] == inbound.eventId
               for k in ("name", "appointment"))

    # delivered again (the same worker, a second worker, the extractor's own check): asked once, logged once
    await w.processor.handle(inbound)
    second = worker(world, model_settings(monkeypatch, model, enabled=True))
    await second.processor.handle(inbound)
    extractor = make_fact_extractor(world.settings.model_copy(update={"facts_model_extraction": True, "openai_api_key": "k"}),
                                    w.store, w.processor._replier.responder)  # noqa: SLF001
    assert extractor is not None
    await extractor(inbound, {"timezone": "Europe/Bucharest"})  # the idempotency record answers, not the model
    assert [e.type for e in await w.store.read(inbound.streamId)].count("FactsExtracted") == 1
    assert len(model.extraction_requests()) == 1 and len(model.reply_requests()) == 1

    calls = len(model.server.behaviour.requests)
    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "m1"), verify=True)
    assert report.differences == [] and report.events == 3
    assert len(model.server.behaviour.requests) == calls, "replay never calls the model"
    await w.close()
    await second.close()


@pytest.mark.parametrize("enabled", [None, False])
async def test_off_by_default_no_extraction_call_and_no_event(world: World, model: FakeModel,
                                                               monkeypatch: pytest.MonkeyPatch, enabled: bool | None) -> None:
    model.facts = '{"facts": [{"kind": "name", "value": "Maria Ionescu"}]}'
    settings = model_settings(monkeypatch, model, enabled=enabled)
    assert settings.facts_model_extraction is False
    w = worker(world, settings)
    inbound = await said(w, "off", "Bună, vin și eu pe la voi")
    await drain(w, inbound.streamId)
    assert [e.type for e in await w.store.read(inbound.streamId)] == ["MessageReceived", "ReplyGenerated"]
    assert model.extraction_requests() == [] and len(model.reply_requests()) == 1
    await w.close()


async def test_without_a_model_key_the_setting_changes_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTS_MODEL_EXTRACTION", "1")
    settings = Settings()
    assert settings.facts_model_extraction and settings.openai_api_key is None
    w = worker(world, settings)
    assert w.processor._after_reply is None  # noqa: SLF001 - the offline responder: nothing to ask
    inbound = await said(w, "nokey", "Bună ziua")
    await drain(w, inbound.streamId)
    assert [e.type for e in await w.store.read(inbound.streamId)] == ["MessageReceived", "ReplyGenerated"]


@pytest.mark.parametrize("answer", ["this is not JSON {", '{"facts": "Maria"}', '[1, 2]',
                                    '{"facts": [{"kind": "email", "value": ""}, {"kind": "order", "value": 7}]}', None],
                         ids=["bad-json", "not-a-list", "a-list-of-numbers", "all-refused", "model-fails"])
async def test_a_useless_or_failing_answer_appends_no_fact_and_the_reply_goes_out(
        world: World, model: FakeModel, monkeypatch: pytest.MonkeyPatch, answer: str | None) -> None:
    model.facts = answer
    w = worker(world, model_settings(monkeypatch, model, enabled=True))
    user = "bad"
    inbound = await said(w, user, "Bună, aveți loc mâine?")
    await w.processor.handle(inbound)
    log = await w.store.read(inbound.streamId)
    spent = [] if answer is None else ["FactsExtracted"]  # an answer that spent tokens is logged for its spend alone
    assert [e.type for e in log] == ["MessageReceived", "ReplyGenerated", *spent]
    assert all(e.payload.facts == [] and e.payload.usage.promptTokens > 0 for e in log[2:])
    assert world.published[-1].eventId == log[1].eventId and not log[1].payload.fallback
    assert len(model.extraction_requests()) == 1
    await drain(w, inbound.streamId)
    assert (await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", user), verify=True)).differences == []
    await w.close()
