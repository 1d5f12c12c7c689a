"""The streamed reply on the widget: from the fake model's first token to the first piece on the
socket, beside the time to the whole reply (from the message's ack), one conversation at a time
on a stack of its own; with the burst window at 0 and on (a burst of three messages)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

from agentstream.bench.common import summary
from agentstream.bench.fresh import fresh_stack
from agentstream.bench.model_server import ModelBehaviour


async def _one(base_url: str, port: int, model: ModelBehaviour, messages: int) -> tuple[float, float] | None:
    """(first token -> first piece, last ack -> whole reply) in ms for one conversation."""
    async with httpx.AsyncClient() as http:
        v = (await http.post(f"{base_url}/v1/widget/demo-salon/visitors")).json()
    url = f"ws://127.0.0.1:{port}/ws/demo-salon"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "userId": v["userId"], "token": v["token"]}))
        tokens_before, first_piece, acked = len(model.first_tokens), None, 0.0
        for n in range(messages):
            await ws.send(json.dumps({"type": "message", "text": f"bench {n}", "clientMessageId": str(uuid.uuid4())}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            now = time.time()
            if frame["type"] == "ack":
                acked = now
            elif frame["type"] == "delta" and first_piece is None:
                first_piece = now
            elif frame["type"] == "reply":
                tokens = model.first_tokens[tokens_before:]
                if first_piece is None or not tokens:
                    return None
                return (first_piece - tokens[-1]) * 1000, (now - acked) * 1000


def measure(base_url: str, port: int, model: ModelBehaviour, conversations: int, messages: int = 1) -> dict[str, Any]:
    """The two figures' summaries over `conversations` taken one after another."""
    firsts, wholes = [], []
    for _ in range(conversations):
        got = asyncio.run(_one(base_url, port, model, messages))
        if got is not None:
            firsts.append(got[0])
            wholes.append(got[1])
    return {"conversations": conversations, "measured": len(firsts), "first_token_to_first_piece_ms": summary(firsts),
            "ack_to_whole_reply_ms": summary(wholes)}


def phases(base: dict[str, str], pids: dict[str, int], model_url: str, model: ModelBehaviour, logs: Path,
           conversations: int = 20) -> dict[str, Any]:
    """The streamed reply with the window at 0 and with a burst of three (each on a stack of its
    own, taken in turn): the model streaming 3 pieces 50 ms apart."""
    model.stream_pieces, model.piece_delay_s = 3, 0.05
    figures: dict[str, Any] = {}
    for name, quiet, messages in (("window_0", "0", 1), ("burst", "2500", 3)):
        with fresh_stack(base, pids, model_url, logs / f"streamed-{name}", REPLY_AFTER_QUIET_MS=quiet) as stack:
            figures[f"streamed_{name}"] = measure(stack.base_url, stack.port, model, conversations, messages)
    return figures


def main() -> None:
    """`python -m agentstream.bench.streaming`: these phases alone (BENCH_STREAM_CONVERSATIONS, default 20)."""
    import os
    import tempfile

    from agentstream.bench.common import report, services
    from agentstream.bench.model_server import ModelServer

    pids: dict[str, int] = {}
    behaviour = ModelBehaviour()
    with services(pids) as base, ModelServer(behaviour) as model:
        figures = phases(base, pids, model.base_url, behaviour, Path(tempfile.mkdtemp(prefix="agentstream-bench-logs-")),
                         int(os.environ.get("BENCH_STREAM_CONVERSATIONS", "20")))
    report("streaming", figures)


if __name__ == "__main__":
    main()
