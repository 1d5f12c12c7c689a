"""A local OpenAI-compatible chat-completions server for tests and benchmarks (a bench tool:
`agentstream bench model-server` runs it on its own; it is never used by the product itself).

It answers `POST /v1/chat/completions` like the real API, after a configurable delay (per
customer, matched on the prompt's text), can fail the next N calls with a status, and
records every request so tests can check what the worker sent. Asked with `stream: true`, it
sends the answer in `stream_pieces` pieces `piece_delay_s` apart (server-sent events, the
usage in a last chunk when `stream_options.include_usage` is set), and notes when each answer's
first piece went, by the prompt's last user text.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from agentstream.local.services import free_port


@dataclass
class ModelBehaviour:
    delay_s: float = 0.0
    slow_marker: str | None = None  # prompts containing this wait `slow_delay_s`
    slow_delay_s: float = 0.0
    held: threading.Event | None = None  # if given, slow prompts wait until it is set instead
    fail_next: int = 0
    fail_status: int = 500
    malformed_next: int = 0  # the next N calls answer 200 with JSON that is not a completion
    empty_next: int = 0  # the next N completions have empty content
    requests: list[dict[str, Any]] = field(default_factory=list)
    stream_pieces: int = 3  # a streamed answer comes in this many pieces
    piece_delay_s: float = 0.0  # between pieces
    first_tokens: dict[str, float] = field(default_factory=dict)  # the prompt's last user text -> time.time() its first piece went


def _last_user(body: dict[str, Any]) -> str:
    return str(next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), ""))


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    last = _last_user(body)
    text = f"[model] re: {last[:80]}"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "local-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", [])),
                  "completion_tokens": len(text) // 4, "total_tokens": 0},
    }


def _split(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i:i + size] for i in range(0, len(text), size)]


async def _pieces(behaviour: ModelBehaviour, body: dict[str, Any]) -> Any:
    """The answer as chat.completion.chunk events, then the usage (if asked) and [DONE]."""
    whole = _answer(body)
    base = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"], "model": whole["model"]}
    for i, piece in enumerate(_split(whole["choices"][0]["message"]["content"], behaviour.stream_pieces)):
        if i:
            await asyncio.sleep(behaviour.piece_delay_s)
        else:
            behaviour.first_tokens[_last_user(body)] = time.time()
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
    yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
    if (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps(base | {'choices': [], 'usage': whole['usage']})}\n\n"
    yield "data: [DONE]\n\n"


def create_app(behaviour: ModelBehaviour) -> Starlette:
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        behaviour.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            return JSONResponse({"error": {"message": "injected failure", "type": "server_error"}}, status_code=behaviour.fail_status)
        if behaviour.malformed_next > 0:
            behaviour.malformed_next -= 1
            return JSONResponse({"choices": []})
        if behaviour.empty_next > 0:
            behaviour.empty_next -= 1
            empty = _answer(body)
            empty["choices"][0]["message"]["content"] = ""
            return JSONResponse(empty)
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        slow = behaviour.slow_marker is not None and behaviour.slow_marker in prompt
        if slow and behaviour.held is not None:
            while not behaviour.held.is_set():
                await asyncio.sleep(0.02)
        else:
            await asyncio.sleep(behaviour.slow_delay_s if slow else behaviour.delay_s)
        if body.get("stream"):
            return StreamingResponse(_pieces(behaviour, body), media_type="text/event-stream")
        return JSONResponse(_answer(body))

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


class ModelServer:
    """Runs the app in a background thread on 127.0.0.1; `base_url` is for OPENAI_BASE_URL."""

    def __init__(self, behaviour: ModelBehaviour | None = None, port: int | None = None) -> None:
        self.behaviour = behaviour or ModelBehaviour()
        self.port = port or free_port()
        self._server = uvicorn.Server(uvicorn.Config(create_app(self.behaviour), host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "ModelServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the local model server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def main() -> None:
    """`agentstream bench model-server`: serve until Ctrl-C on BENCH_MODEL_PORT (default 8090), each
    answer after BENCH_MODEL_DELAY_MS (default 0); point OPENAI_BASE_URL at the printed address."""
    import os

    behaviour = ModelBehaviour(delay_s=int(os.environ.get("BENCH_MODEL_DELAY_MS", "0")) / 1000)
    server = ModelServer(behaviour, port=int(os.environ.get("BENCH_MODEL_PORT", "8090")))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # set explicitly: a SIGINT ignored by the parent is inherited
        signal.signal(sig, lambda *_: stop.set())
    with server:  # listening before the address is printed: whoever reads it can connect at once
        print(f"OPENAI_BASE_URL={server.base_url} (any OPENAI_API_KEY); Ctrl-C stops", flush=True)
        while server._thread.is_alive() and not stop.wait(0.5):  # noqa: SLF001
            pass
