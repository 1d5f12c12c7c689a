"""The streamed reply on the widget: from the fake model's first token to the first piece on the
socket, beside the time to the whole reply (from the message's ack), with the burst window at 0
and on (a burst of three messages), each on a stack of its own. The probe conversations are
taken one after another while other widget customers write at `background_rate` messages a
second (the pipeline bench gives half the capacity it measured); then `replay --verify` on the
stack's business, once the stack has caught up."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.bench.common import summary
from agentstream.bench.fresh import Stack, fresh_stack
from agentstream.bench.load import widget_socket
from agentstream.bench.model_server import ModelBehaviour
from agentstream.settings import Settings
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer

BUSINESS = "demo-salon"
BACKGROUND_SOCKETS = 10
VERIFY_WITHIN_S = 60.0  # the background's last replies land; then a difference is a difference


async def _one(base_url: str, port: int, model: ModelBehaviour, messages: int) -> tuple[float, float] | None:
    """(first token -> first piece, last ack -> whole reply) in ms for one conversation."""
    tag = uuid.uuid4().hex
    async with httpx.AsyncClient() as http, await widget_socket(http, base_url, port, BUSINESS) as ws:
        first_piece, acked = None, 0.0
        for n in range(messages):
            await ws.send(json.dumps({"type": "message", "text": f"bench {tag} {n}", "clientMessageId": str(uuid.uuid4())}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            now = time.time()
            if frame["type"] == "ack":
                acked = now
            elif frame["type"] == "delta" and first_piece is None:
                first_piece = now
            elif frame["type"] == "reply":
                token = next((at for text, at in model.first_tokens.items() if tag in text), None)
                if first_piece is None or token is None:
                    return None
                return (first_piece - token) * 1000, (now - acked) * 1000


async def _background(base_url: str, port: int, rate: float, stop: asyncio.Event) -> None:
    """Widget customers writing at `rate` messages a second in all until `stop`."""

    async def customer(index: int) -> None:
        every = BACKGROUND_SOCKETS / rate
        async with httpx.AsyncClient() as http, await widget_socket(http, base_url, port, BUSINESS) as ws:
            drain = asyncio.create_task(_drain(ws))
            await asyncio.sleep(index / rate)
            while not stop.is_set():
                await ws.send(json.dumps({"type": "message", "text": "Aveti loc maine?", "clientMessageId": str(uuid.uuid4())}))
                try:
                    await asyncio.wait_for(stop.wait(), every)
                except asyncio.TimeoutError:
                    pass
            drain.cancel()

    await asyncio.gather(*(customer(i) for i in range(BACKGROUND_SOCKETS)))


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def _measured(base_url: str, port: int, model: ModelBehaviour, conversations: int, messages: int,
                    background_rate: float) -> list[tuple[float, float] | None]:
    stop = asyncio.Event()
    background = asyncio.create_task(_background(base_url, port, background_rate, stop)) if background_rate > 0 else None
    try:
        return [await _one(base_url, port, model, messages) for _ in range(conversations)]
    finally:
        stop.set()
        if background is not None:
            await background


def measure(base_url: str, port: int, model: ModelBehaviour, conversations: int, messages: int = 1,
            background_rate: float = 0.0) -> dict[str, Any]:
    """The two figures' summaries over `conversations` taken one after another."""
    got = asyncio.run(_measured(base_url, port, model, conversations, messages, background_rate))
    firsts = [g[0] for g in got if g is not None]
    wholes = [g[1] for g in got if g is not None]
    return {"conversations": conversations, "measured": len(firsts), "background_rate_per_s": background_rate,
            "first_token_to_first_piece_ms": summary(firsts), "ack_to_whole_reply_ms": summary(wholes)}


async def verify_differences(settings: Settings, within_s: float = VERIFY_WITHIN_S) -> int:
    """`replay --verify` on the business: its differences once the stack has caught up (or
    after `within_s`, those left)."""
    deadline = time.monotonic() + within_s
    async with dynamodb_client(settings) as ddb:
        while True:
            report = await new_replayer(ddb, settings).run(Scope(BUSINESS, None, None), True)
            if not report.differences or time.monotonic() > deadline:
                return len(report.differences)
            await asyncio.sleep(2.0)


def phases(base: dict[str, str], pids: dict[str, int], model_url: str, model: ModelBehaviour, logs: Path,
           conversations: int = 20, background_rate: float = 0.0) -> dict[str, Any]:
    """The streamed reply with the window at 0, then with a burst of three (the model streaming 3
    pieces 50 ms apart), each on a fresh stack with the same background load."""
    model.stream_pieces, model.piece_delay_s = 3, 0.05
    figures: dict[str, Any] = {}
    for name, quiet, messages in (("window_0", "0", 1), ("burst", "2500", 3)):
        with fresh_stack(base, pids, model_url, logs / f"streamed-{name}", REPLY_AFTER_QUIET_MS=quiet) as stack:
            figures[f"streamed_{name}"] = _phase(stack, model, conversations, messages, background_rate)
    return figures


def _phase(stack: Stack, model: ModelBehaviour, conversations: int, messages: int, background_rate: float) -> dict[str, Any]:
    figures = measure(stack.base_url, stack.port, model, conversations, messages, background_rate)
    return figures | {"verify_differences": asyncio.run(verify_differences(stack.settings))}


def main() -> None:
    """`python -m agentstream.bench.streaming`: these phases alone (BENCH_STREAM_CONVERSATIONS,
    default 20; BENCH_STREAM_RATE, other customers' messages a second, default 0)."""
    import os
    import tempfile

    from agentstream.bench.common import report, services
    from agentstream.bench.model_server import ModelServer

    pids: dict[str, int] = {}
    behaviour = ModelBehaviour()
    with services(pids) as base, ModelServer(behaviour) as model:
        figures = phases(base, pids, model.base_url, behaviour, Path(tempfile.mkdtemp(prefix="agentstream-bench-logs-")),
                         int(os.environ.get("BENCH_STREAM_CONVERSATIONS", "20")),
                         float(os.environ.get("BENCH_STREAM_RATE", "0")))
    report("streaming", figures)


if __name__ == "__main__":
    main()
