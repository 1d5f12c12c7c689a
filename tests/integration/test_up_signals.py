"""`agentstream up` as a person runs it, on ports and a home of the test's own: a component
restarted after a crash stops on Ctrl-C as fast as the first one did, and a supervisor killed
with kill -9 takes Kafka, ministack and the components with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentstream.local.services import LocalHome, free_port, port_open

pytestmark = pytest.mark.soak  # kill -9 and Ctrl-C of `up`: `make soak` runs each 20 times in a row

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("bridge", "worker", "gateway")
STARTED = {"bridge": "bridge.started", "worker": "worker.started", "gateway": "analytics.started"}  # last start-up lines
STOP_SIGNALS = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
# How long a stop may take before the test gives up: generous, for a busy machine. A component that
# ignored its stop would still go (SIGKILL 20 s after SIGTERM), so the tests check what only a clean
# stop does: no stop signal blocked, each component's own stop line, exit code 0. How fast the stack
# stops is a speed target for a bench (`agentstream bench` has none for `up` yet).
STOP_TIMEOUT_S = 90


def stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): the same process, not a later one given the same pid."""
    fields = stat(pid)
    return (pid, fields[19]) if fields else None


def alive(ident: tuple[int, str]) -> bool:
    return identity(ident[0]) == ident


def children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat(int(entry.name))) and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


def tree(pid: int) -> set[tuple[int, str]]:
    """The living descendants of `pid`."""
    found: set[tuple[int, str]] = set()
    todo = children(pid)
    while todo:
        kid = todo.pop()
        if ident := identity(kid):
            found.add(ident)
            todo += children(kid)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
    except OSError:
        return []


def left(processes: set[tuple[int, str]]) -> list[str]:
    return [" ".join(cmdline(pid))[:120] for pid, start in processes if alive((pid, start))]


def sigblk(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("SigBlk:")[1].split()[0], 16)


def wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll `check` until it holds; else fail with `what` (built then, so logs are up to date)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f}s: {what()}")
        time.sleep(0.1)


@dataclass
class Up:
    """A running `agentstream up` and its ports."""

    popen: subprocess.Popen[bytes]
    home: Path
    ports: dict[str, int]
    seen: set[tuple[int, str]] = field(default_factory=set)

    def tree(self) -> set[tuple[int, str]]:
        """Its living descendants, remembered for the clean-up."""
        found = tree(self.popen.pid)
        self.seen |= found
        return found

    def components(self) -> dict[str, int]:
        """name → pid of the components running as its children (after their exec wrapper)."""
        found = {}
        for kid in children(self.popen.pid):
            cmd = cmdline(kid)
            if cmd[1:3] == ["-m", "agentstream.cli"] and cmd[3] in COMPONENTS:
                found[cmd[3]] = kid
        return found

    def crash(self, name: str) -> None:
        """kill -9 a component; wait until its replacement has started (its port listens and its
        last start-up line is logged), as a person would press Ctrl-C some time later."""
        old, starts = self.components()[name], self.component_log(name).count(STARTED[name])
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: self.components().get(name, old) != old, 10, lambda: f"{name} not restarted:\n{self.log()}")
        wait_until(lambda: self.ready(name) and self.component_log(name).count(STARTED[name]) > starts, 30,
                   lambda: f"the restarted {name} did not start:\n{self.log()}")

    def services(self) -> set[tuple[int, str]]:
        """Kafka and ministack (started by `up`), and its components."""
        found = {identity(kid) for kid in children(self.popen.pid)
                 if {"kafka.Kafka", str(self.home / "ministack-venv" / "bin" / "ministack")} & set(cmdline(kid))}
        assert len(found) == 2, [cmdline(kid) for kid in children(self.popen.pid)]
        return found | {identity(pid) for pid in self.components().values()}

    def ready(self, name: str) -> bool:
        return port_open(self.ports[name])

    def component_log(self, name: str) -> str:
        return (self.home / "logs" / f"{name}.log").read_text(errors="replace")

    def log(self) -> str:
        out = (self.home / "up.log").read_text(errors="replace")
        logs = self.home / "logs"
        return out + "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))


def shared_home() -> LocalHome:
    """The project's local home, whose Kafka jars and ministack virtualenv the test borrows."""
    home = LocalHome(Path(os.environ.get("AGENTSTREAM_HOME", ROOT / ".local")))
    home.install_kafka()
    home.install_ministack()
    return home


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    """`agentstream up` with a home of its own (jars and ministack linked from the project's),
    free ports, no .env; whatever is left of its process tree is killed afterwards."""
    shared = shared_home()
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    (home / "kafka" / "lib").symlink_to(shared.kafka_lib)
    (home / "ministack-venv").symlink_to(shared.ministack_bin.parent.parent)
    ports = {"gateway": free_port(), "kafka": free_port(), "controller": free_port(), "dynamodb": free_port(),
             "bridge": free_port(), "worker": free_port(), "gateway_metrics": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DYNAMODB_ENDPOINT_URL",
                                                           "AGENTSTREAM_SECRET_KEY")}
    env |= {"AGENTSTREAM_HOME": str(home), "AGENTSTREAM_ENV_FILE": "none", "LOG_FORMAT": "console"}
    cmd = [sys.executable, "-m", "agentstream.cli", "up", "--port", str(ports["gateway"]),
           "--kafka-port", str(ports["kafka"]), "--kafka-controller-port", str(ports["controller"]),
           "--dynamodb-port", str(ports["dynamodb"]), "--bridge-metrics-port", str(ports["bridge"]),
           "--worker-metrics-port", str(ports["worker"]), "--gateway-metrics-port", str(ports["gateway_metrics"])]
    with (home / "up.log").open("wb") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True)
    running = Up(popen, home, ports)
    try:
        deadline = time.monotonic() + 120
        while not all(running.ready(name) for name in COMPONENTS):
            running.tree()
            assert popen.poll() is None and time.monotonic() < deadline, f"`up` did not start:\n{running.log()}"
            time.sleep(0.2)
        yield running
    finally:
        running.tree()
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        for ident in running.seen:
            if alive(ident):
                os.kill(ident[0], signal.SIGKILL)


def test_restarted_components_stop_on_ctrl_c_as_fast_as_the_first(up: Up) -> None:
    for name in COMPONENTS:
        up.crash(name)
    for name, pid in up.components().items():
        assert not sigblk(pid) & STOP_SIGNALS, f"the restarted {name} blocks SIGINT/SIGTERM: SigBlk {sigblk(pid):#x}"
    everything = up.tree() | {identity(up.popen.pid)}
    assert up.services() <= everything
    started = time.monotonic()
    up.popen.send_signal(signal.SIGINT)
    wait_until(lambda: not any(alive(p) for p in everything), STOP_TIMEOUT_S, lambda: f"left after Ctrl-C: {left(everything)}\n{up.log()}")
    print(f"stopped in {time.monotonic() - started:.1f}s")
    assert up.popen.wait(1) == 0
    assert "bridge.stopped" in up.component_log("bridge") and "worker.stopped" in up.component_log("worker")


def test_a_killed_supervisor_takes_the_stack_with_it(up: Up) -> None:
    everything = up.tree()
    assert up.services() <= everything
    listening = [up.ports[name] for name in ("gateway", "kafka", "dynamodb")]
    started = time.monotonic()
    up.popen.kill()
    up.popen.wait()
    wait_until(lambda: not any(port_open(port) for port in listening) and not any(alive(p) for p in everything), STOP_TIMEOUT_S,
               lambda: f"left: {left(everything)}, listening: {[p for p in listening if port_open(p)]}\n{up.log()}")
    print(f"all gone in {time.monotonic() - started:.1f}s")
    for name in COMPONENTS:  # each stopped cleanly, before Kafka and ministack did
        assert "is gone: stopping" in up.component_log(name), up.log()
    assert "bridge.stopped" in up.component_log("bridge") and "worker.stopped" in up.component_log("worker")
