"""`agentstream up --scale`: several of every process on one machine, one public port in front of
the gateways; widget customers on either gateway get their replies; Ctrl-C stops them all."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from agentstream.local.services import port_open
from tests.e2e.stack import run_sync
from tests.integration.test_up_signals import alive, children, cmdline, identity, left, shared_home, tree, wait_until

pytestmark = pytest.mark.soak  # several of every process, then Ctrl-C: `make soak` runs it 20 times in a row

SCALE = {"gateway": 2, "worker": 2, "delivery": 2, "bridge": 2, "media": 1}


def _quiet_block(size: int) -> int:
    """A port whose next `size` ports are free too (the scaled gateways listen after the public one),
    below Linux's ephemeral range (32768 up), so no outgoing connection of another test takes one
    between this check and the gateway's listen."""
    while True:
        base = random.randrange(20000, 32000 - size)
        if all(not port_open(base + i) for i in range(size + 1)):
            return base


async def _chat(port: int, text: str) -> dict:
    async with httpx.AsyncClient() as http:
        v = (await http.post(f"http://127.0.0.1:{port}/v1/widget/demo-salon/visitors")).json()
    url = f"ws://127.0.0.1:{port}/ws/demo-salon?userId={v['userId']}&token={v['token']}"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "message", "text": text, "clientMessageId": str(uuid.uuid4())}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 90))
            if frame["type"] == "reply":
                return frame


def test_scaled_stack_answers_through_the_public_port_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    shared = shared_home()
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "lib").symlink_to(shared.kafka_lib)
    (home / "ministack-venv").symlink_to(shared.ministack_bin.parent.parent)
    port = _quiet_block(40)  # public port, the gateways after it, Kafka, ministack, metrics from +10 (ten apart)
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DYNAMODB_ENDPOINT_URL",
                                                           "AGENTSTREAM_SECRET_KEY")}
    env |= {"AGENTSTREAM_HOME": str(home), "AGENTSTREAM_ENV_FILE": "none", "LOG_FORMAT": "console"}
    scale = ",".join(f"{k}={v}" for k, v in SCALE.items())
    cmd = [sys.executable, "-m", "agentstream.cli", "up", "--port", str(port), "--scale", scale,
           "--kafka-port", str(port + 5), "--kafka-controller-port", str(port + 6), "--dynamodb-port", str(port + 7),
           "--bridge-metrics-port", str(port + 10), "--worker-metrics-port", str(port + 11),
           "--gateway-metrics-port", str(port + 12)]
    with (home / "up.log").open("wb") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
    seen: set[tuple[int, str]] = set()

    def log() -> str:
        logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted((home / "logs").glob("*.log")))
        return (home / "up.log").read_text(errors="replace") + logs

    try:
        gateways = [port + 1 + i for i in range(SCALE["gateway"])]
        wait_until(lambda: popen.poll() is None and all(port_open(p) for p in [port, *gateways]) and b"ready" in (home / "up.log").read_bytes(),
                   180, lambda: f"`up --scale` did not start:\n{log()}")
        def kinds() -> list[str]:
            lines = [cmdline(kid) for kid in children(popen.pid)]
            return sorted(line[3] for line in lines if line[1:3] == ["-m", "agentstream.cli"] and len(line) > 3)

        # every process runs (a component that died at start, e.g. on a port another program took
        # meanwhile, is restarted by the supervisor: wait for that rather than catch the gap)
        expected = sorted(k for k, n in SCALE.items() for _ in range(n))
        wait_until(lambda: kinds() == expected, 60, lambda: f"processes {kinds()}, not {expected}:\n{log()}")
        assert any("agentstream.local.proxy" in " ".join(cmdline(kid)) for kid in children(popen.pid))

        async def customers() -> list[dict]:
            return await asyncio.gather(*(_chat(port, f"Buna ziua, la ce ora inchideti azi? ({i})") for i in range(6)))

        replies = run_sync(customers())
        assert len({r["inReplyTo"] for r in replies}) == 6 and all(r["text"] for r in replies)
        direct = [run_sync(_chat(p, "Si maine?")) for p in gateways]  # a customer on each gateway itself
        assert all(r["text"] for r in direct)

        everything = tree(popen.pid) | {identity(popen.pid)}
        seen |= everything
        popen.send_signal(signal.SIGINT)  # the stop time of the usual stack is test_up_signals' business
        wait_until(lambda: not any(alive(p) for p in everything), 60, lambda: f"left after Ctrl-C: {left(everything)}\n{log()}")
        assert popen.wait(1) == 0
    finally:
        seen |= tree(popen.pid)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        for ident in seen:
            if alive(ident):
                os.kill(ident[0], signal.SIGKILL)
