"""The model: the real `openai` client, or the offline responder when no key is set."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agentstream import metrics
from agentstream.adapters.image_input import LoadImage, with_images
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.offline import offline_reply
from agentstream.settings import Settings

log = structlog.get_logger(__name__)

FALLBACK = {
    "ro": "Ne pare rău, întâmpinăm o problemă tehnică. Un coleg vă va răspunde cât mai curând.",
    "en": "Sorry, we are having a technical problem. A colleague will get back to you shortly.",
}


@dataclass(frozen=True)
class Answer:
    content: str
    model: str
    latency_ms: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback: bool = False
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


OnPiece = Callable[[str], Awaitable[None]]  # the answer's text so far, as the model writes it


class Responder(Protocol):
    async def answer(self, ctx: ReplyContext, on_piece: OnPiece | None = None) -> Answer: ...

    async def close(self) -> None: ...


class OfflineResponder:
    """Answers from the context alone (hours, time of day, earlier turns); no account needed."""

    name = "offline"

    async def answer(self, ctx: ReplyContext, on_piece: OnPiece | None = None) -> Answer:
        start = time.perf_counter()
        return Answer(offline_reply(ctx), "offline", int((time.perf_counter() - start) * 1000))

    async def close(self) -> None:
        """Nothing to release."""


class OpenAIResponder:
    """Chat completions with timeout, retries with backoff on 429/5xx, and a polite fallback.

    One client for the process, so every call reuses its connection pool."""

    def __init__(self, settings: Settings, images: LoadImage | None = None) -> None:
        """`images`: reads a kept photo, for a model that accepts images (MODEL_ACCEPTS_IMAGES)."""
        self._images = images
        self._model = settings.openai_model
        self._budget = settings.prompt_budget_chars
        self._client = _openai().AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            http_client=_http_client(),
        )

    async def answer(self, ctx: ReplyContext, on_piece: OnPiece | None = None) -> Answer:
        """The model's answer; with `on_piece`, asked with streaming on (the usage kept: the last
        chunk carries it) and the text so far handed to `on_piece` as each piece comes."""
        start = time.perf_counter()
        try:
            messages: list[dict[str, Any]] = build_prompt(ctx, self._budget)  # type: ignore[assignment]
            if self._images is not None and ctx.extra.get("images"):
                messages = await with_images(messages, ctx.extra["images"], self._images)
            body = {"model": self._model, "messages": messages}
            if on_piece is None:
                content, model, usage = _reply_of(await self._chat(body))
            else:
                content, model, usage = await self._streamed(body, on_piece)
        except (_openai().OpenAIError, ValueError) as exc:
            metrics.MODEL_ERRORS.labels(kind=type(exc).__name__).inc()
            log.warning("model.failed", error=type(exc).__name__, detail=str(exc)[:200])
            return Answer(FALLBACK.get(ctx.language, FALLBACK["en"]), self._model, _ms(start), fallback=True)
        if not content.strip():  # an empty answer is a failed one: the fallback, and a person is asked
            log.warning("model.empty_answer", model=model or self._model)
            return Answer(FALLBACK.get(ctx.language, FALLBACK["en"]), model or self._model, _ms(start), fallback=True)
        return Answer(
            content=content.strip(),
            model=model or self._model,
            latency_ms=_ms(start),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    async def _chat(self, body: dict[str, Any]) -> Any:
        """One chat completion as the API's JSON, through the client's own request path (its
        retries, timeout and errors), without the per-call transform of the typed `create`
        (which cost about 5 ms of CPU a call here against about 2)."""
        return await self._client.post("/chat/completions", cast_to=object, body=body)

    async def _streamed(self, body: dict[str, Any], on_piece: OnPiece) -> tuple[str, str, dict[str, Any]]:
        """(content, model, usage) of a streamed chat completion, each piece's text so far to `on_piece`."""
        stream = await self._client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        model, usage = "", {}
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
            piece = chunk.choices[0].delta.content if chunk.choices and chunk.choices[0].delta else None
            if piece:
                parts.append(piece)
                await on_piece("".join(parts))
        return "".join(parts), model, usage

    async def complete_json(self, messages: list[dict[str, str]]) -> Completion:
        """One completion asked for a JSON object, on the same client (fact extraction); no
        fallback: an error is the caller's to handle."""
        resp = await self._chat({"model": self._model, "messages": messages,
                                 "response_format": {"type": "json_object"}, "temperature": 0})
        content, model, usage = _reply_of(resp)
        return Completion(content, model or self._model, int(usage.get("prompt_tokens") or 0),
                          int(usage.get("completion_tokens") or 0))

    async def close(self) -> None:
        await self._client.close()


def _openai() -> Any:
    """The `openai` package, imported when a model is first used: it takes a second of CPU to
    import, which the processes that never ask a model (bridge, gateway, delivery) need not pay."""
    import openai

    return openai


def _http_client() -> Any:
    """openai's aiohttp transport where this openai has it: its default httpx pool checks every
    pooled connection on each request, which with hundreds of conversations in flight costs
    more than twice the CPU per call. None (openai's default client) otherwise."""
    try:
        return _openai().DefaultAioHttpClient()
    except (AttributeError, RuntimeError):
        return None


def _reply_of(resp: Any) -> tuple[str, str, dict[str, Any]]:
    """(content, model, usage) of a chat completion's JSON; ValueError when it has no message."""
    try:
        choice = resp["choices"][0]["message"]
        return str(choice.get("content") or ""), str(resp.get("model") or ""), dict(resp.get("usage") or {})
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a chat completion: {str(resp)[:200]}") from exc


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def make_responder(settings: Settings, images: LoadImage | None = None) -> Responder:
    """The real model when a key is set, the offline responder otherwise (`images`: see OpenAIResponder)."""
    return OpenAIResponder(settings, images) if settings.openai_api_key else OfflineResponder()
