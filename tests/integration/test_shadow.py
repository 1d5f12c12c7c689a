"""Shadow replay (issue 17) on the real local stack: `agentstream shadow` as a person runs it, the
candidate asked through the real `openai` client against a local fake model server that counts
requests. --max-calls is a hard cap, nothing is appended to the log or published for delivery,
the pairs are on agent.shadow.v1 keyed by streamId, and the report holds both replies, escaped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agentstream.adapters.kafka.client import ensure_topics, partitions_of
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.events import ReplyGenerated, new_event
from agentstream.settings import Settings
from agentstream.wiring import new_explainer
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_cli import cli
from tests.integration.world import T0, World, drain, inbound

pytestmark = pytest.mark.integration
SCRIPT = "<script>alert('shadow')</script>"
MESSAGES = {"sh1": ["Bună ziua, aveți loc mâine?", f"Și la 10? {SCRIPT}"], "sh2": ["Cât costă un tuns?"],
            "sh3": ["What are your opening hours?"]}


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour()) as server:
        yield server


async def _traffic(world: World) -> dict[str, ReplyGenerated]:
    """Four answered inbounds of demo-salon (and one of demo-restaurant); their replies by inbound id."""
    minute = 0
    for user, texts in MESSAGES.items():
        for text in texts:
            await world.store.append(inbound(user, text, minute))
            minute += 10
        await drain(world, f"demo-salon#{user}")
    other = new_event("MessageReceived", business_id="demo-restaurant", user_id="r1", channel="websocket",
                      payload={"content": "A table for two?"}, occurred_at=T0)
    await world.store.append(other)
    await drain(world, "demo-restaurant#r1")
    replies = {}
    for user in MESSAGES:
        for event in await world.store.read(f"demo-salon#{user}"):
            if isinstance(event, ReplyGenerated):
                replies[event.payload.inReplyTo] = event
    assert len(replies) == 4
    return replies


async def _events_in_log(world: World) -> int:
    count, kwargs = 0, {"TableName": world.settings.tables.events, "Select": "COUNT", "ConsistentRead": True}
    while True:
        page = await world.ddb.scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def _records_in(settings: Settings, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    numbers = (await partitions_of(settings.kafka_bootstrap_servers, [topic]))[topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets([TopicPartition(topic, p) for p in numbers])).values())
    finally:
        await consumer.stop()


def _use_model(monkeypatch: pytest.MonkeyPatch, model: ModelServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)


async def test_shadow_asks_the_candidate_within_the_cap_and_changes_nothing(
        world: World, model: ModelServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = world.settings
    await ensure_topics(s, partitions=3)
    replies = await _traffic(world)
    before = await _events_in_log(world)
    _use_model(monkeypatch, model)
    (tmp_path / "new.txt").write_text("You are the NEW salon assistant. Answer in one sentence.", encoding="utf-8")
    out = tmp_path / "report.html"

    run = cli("shadow", "--business", "demo-salon", "--model", "candidate-model", "--instructions", str(tmp_path / "new.txt"),
              "--max-calls", "3", "--concurrency", "4", "--out", str(out))
    assert run.returncode == 0, run.stdout
    assert "inbounds: 4; asked: 3; not asked (--max-calls): 1; not rebuilt: 0; context reproduced: 3" in run.stdout
    assert "shadow replay" in run.stdout and "4/4" in run.stdout  # the progress bar, at its end

    requests = [r["body"] for r in model.behaviour.requests]
    assert len(requests) == 3  # the hard cap, with four in flight
    assert all(b["model"] == "candidate-model" for b in requests)
    assert all(b["messages"][0]["content"].startswith("You are the NEW salon assistant.") for b in requests)
    assert await _events_in_log(world) == before  # nothing appended
    assert await _records_in(s, s.topic_replies) == 0  # nothing published for delivery

    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    asked = [p for p in report["pairs"] if p["status"] == "asked"]
    assert len(report["pairs"]) == 4 and len(asked) == 3
    assert {p["inbound"]["eventId"] for p in report["pairs"]} == set(replies)  # demo-restaurant's is not there
    for pair in asked:
        logged = replies[pair["inbound"]["eventId"]]
        assert pair["old"]["content"] == logged.payload.content and pair["old"]["eventId"] == logged.eventId
        assert pair["new"]["content"] == f"[model] re: {pair['inbound']['content'][:80]}"
        assert pair["new"]["model"] == "candidate-model" and pair["new"]["completionTokens"] > 0
        assert pair["new"]["costUsd"] is None and pair["old"]["costUsd"] == 0  # unknown model; offline is free
    assert report["summary"]["new"]["costUsd"] is None

    assert await _records_in(s, s.topic_shadow) == 3  # one per asked inbound (the command awaited their acks)
    records = await read_topic(s.kafka_bootstrap_servers, s.topic_shadow, expect=3, timeout=60)
    assert len(records) == 3
    assert sorted(r["key"] for r in records) == sorted(p["streamId"] for p in asked)
    assert {r["value"]["inbound"]["eventId"] for r in records} == {p["inbound"]["eventId"] for p in asked}
    assert all(r["value"]["runId"] == report["runId"] and r["value"]["new"]["content"] for r in records)

    page = out.read_text(encoding="utf-8")
    assert SCRIPT not in page and "&lt;script&gt;alert(&#x27;shadow&#x27;)&lt;/script&gt;" in page
    for pair in asked:
        for side in ("old", "new"):
            assert _escaped(pair[side]["content"]) in page


def _escaped(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


async def test_each_inbound_is_rebuilt_as_explain_rebuilds_it(
        world: World, model: ModelServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without --instructions the candidate is sent the very prompt `explain` rebuilds."""
    await ensure_topics(world.settings, partitions=3)
    replies = await _traffic(world)
    _use_model(monkeypatch, model)
    run = cli("shadow", "--business", "demo-salon", "--out", str(tmp_path / "same.html"))
    assert run.returncode == 0, run.stdout
    sent = {_last_user(r["body"]): r["body"]["messages"] for r in model.behaviour.requests}
    assert len(sent) == 4
    for reply in replies.values():
        explained = await new_explainer(world.ddb, world.settings).explain(reply.eventId)
        assert sent[explained.inbound.payload.content] == explained.prompt


def _last_user(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


async def test_since_limit_offline_and_one_line_errors(world: World, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = world.settings
    await ensure_topics(s, partitions=3)
    replies = await _traffic(world)
    out = tmp_path / "r.html"
    since = cli("shadow", "--business", "demo-salon", "--since", "2026-11-24T08:05:00Z", "--limit", "2", "--out", str(out))
    assert since.returncode == 0, since.stdout
    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    # from 08:05 on: the inbounds at 08:10, 08:20 and 08:30; the two latest of them
    assert [p["inbound"]["occurredAt"] for p in report["pairs"]] == ["2026-11-24T08:20:00.000Z", "2026-11-24T08:30:00.000Z"]
    assert report["candidate"]["model"] == "offline" and "offline responder" in report["notes"][0]
    assert all(p["new"]["content"] and p["inbound"]["eventId"] in replies for p in report["pairs"])

    unknown = cli("shadow", "--business", "no-such-business", "--out", str(out))
    assert unknown.returncode == 2 and unknown.stdout.strip() == "agentstream shadow: unknown business 'no-such-business' (no business info)"
    monkeypatch.setenv("TOPIC_SHADOW", s.topic_shadow + ".missing")
    missing = cli("shadow", "--business", "demo-salon", "--out", str(out))
    assert missing.returncode == 2, missing.stdout
    assert missing.stdout.strip() == f"agentstream shadow: topic {s.topic_shadow}.missing does not exist: run `agentstream setup`"
