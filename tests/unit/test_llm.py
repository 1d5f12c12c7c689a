"""The model adapter against a local OpenAI-compatible server: answers, one shared client for
every call, and the polite fallback on errors and timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from agentstream.adapters.llm import FALLBACK, OpenAIResponder
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.projections.context import ReplyContext
from agentstream.projections.conversation import empty_memory
from agentstream.projections.timecontext import time_context
from agentstream.settings import Settings


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour()) as server:
        yield server


def responder(model: ModelServer, **overrides: object) -> OpenAIResponder:
    options = {"openai_api_key": "sk-test-not-real", "openai_base_url": model.base_url, "openai_model": "local-model",
               "openai_max_retries": 0, "openai_timeout_s": 5.0} | overrides
    return OpenAIResponder(Settings(**options))  # type: ignore[arg-type]


def context(text: str, language: str = "en") -> ReplyContext:
    at = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    return ReplyContext(business={"name": "Salon"}, system_instructions="Be brief.", rag_entries=[],
                        memory=empty_memory("b", "u"), time=time_context(at, "Europe/Bucharest", {}),
                        message=text, language=language)


async def test_concurrent_answers_share_one_client(model: ModelServer) -> None:
    r = responder(model)
    client = r._client  # noqa: SLF001
    answers = await asyncio.gather(*(r.answer(context(f"question {i}")) for i in range(20)))
    assert [a.content for a in answers] == [f"[model] re: question {i}" for i in range(20)]
    assert all(a.model == "local-model" and not a.fallback and a.prompt_tokens > 0 for a in answers)
    assert r._client is client and len(model.behaviour.requests) == 20  # noqa: SLF001
    assert model.behaviour.requests[0]["authorization"] == "Bearer sk-test-not-real"
    await r.close()


async def test_server_errors_after_the_retries_give_the_fallback(model: ModelServer) -> None:
    model.behaviour.fail_next = 2
    r = responder(model, openai_max_retries=1)
    answer = await r.answer(context("Aveți loc mâine?", language="ro"))
    assert answer.fallback and answer.content == FALLBACK["ro"]
    assert len(model.behaviour.requests) == 2, "one call and one retry"
    assert not (await r.answer(context("again"))).fallback  # the server is fine again
    await r.close()


async def test_a_model_slower_than_the_timeout_gives_the_fallback(model: ModelServer) -> None:
    held = threading.Event()  # the model answers only once the test lets it: later than any timeout
    model.behaviour.slow_marker, model.behaviour.held = "hello", held
    r = responder(model, openai_timeout_s=0.3)
    try:
        answer = await asyncio.wait_for(r.answer(context("hello")), 120)
        assert not held.is_set(), "the fallback came while the model was still holding its answer"
        assert answer.fallback and answer.content == FALLBACK["en"] and len(model.behaviour.requests) == 1
    finally:
        held.set()
        await r.close()


async def test_a_reply_that_is_not_a_completion_gives_the_fallback(model: ModelServer) -> None:
    model.behaviour.malformed_next = 1
    r = responder(model)
    answer = await r.answer(context("Aveți loc mâine?", language="ro"))
    assert answer.fallback and answer.content == FALLBACK["ro"]
    assert (await r.answer(context("again"))).content == "[model] re: again"
    await r.close()


async def test_an_empty_answer_is_a_fallback(model: ModelServer) -> None:
    model.behaviour.empty_next = 1
    r = responder(model)
    answer = await r.answer(context("Aveți loc mâine?", language="ro"))
    assert answer.fallback and answer.content == FALLBACK["ro"]
    await r.close()


async def test_a_streamed_answer_comes_in_pieces_and_keeps_its_usage() -> None:
    with ModelServer(ModelBehaviour(stream_pieces=4, piece_delay_s=0.05)) as server:
        r = responder(server)
        seen: list[str] = []

        async def on_piece(text: str) -> None:
            seen.append(text)

        answer = await r.answer(context("cand aveti liber?"), on_piece=on_piece)
        await r.close()
    assert answer.content == "[model] re: cand aveti liber?" and not answer.fallback
    assert len(seen) >= 3 and seen[-1] == answer.content and all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0  # the usage chunk was asked for and read
    assert server.behaviour.requests[0]["body"]["stream_options"] == {"include_usage": True}
