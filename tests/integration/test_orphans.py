"""A component whose supervisor is killed (kill -9 of `agentstream up` or of a test run) stops
by itself instead of running on as an orphan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentstream.local.services import free_port
from tests.e2e.stack import prepare

pytestmark = pytest.mark.soak  # a supervisor killed: `make soak` runs it 20 times in a row

SUPERVISOR = """
import json, sys, time
from pathlib import Path
from agentstream.stack import spawn_component
proc = spawn_component("gateway", json.loads(sys.argv[1]), Path(sys.argv[2]))
print(proc.popen.pid, flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_component_stops_when_its_supervisor_is_killed(env: dict[str, str], tmp_path: Path) -> None:
    env = env | {"GATEWAY_PORT_HTTP": str(free_port())}
    prepare(env)  # tables and topics: a gateway without its replies topic stops at once
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(env), str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
    child = int(supervisor.stdout.readline())
    log = tmp_path / "gateway.log"
    try:
        deadline = time.monotonic() + 120  # its last start-up line: running, and watching its supervisor
        while running(child) and "analytics.started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(child) and "analytics.started" in log.read_text(), log.read_text()
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 45
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not running(child), "the gateway outlived its supervisor"
        assert "is gone: stopping" in log.read_text()
    finally:
        if running(child):
            os.killpg(child, signal.SIGKILL)
