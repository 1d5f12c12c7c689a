"""The local stack without Docker: a single-node KRaft Kafka and ministack .

Jars come from Maven Central through a small pom; ministack lives in its own virtualenv (its
pinned botocore would clash with aiobotocore's). Everything sits under one home folder, so a
second start reuses it. Processes start in their own process group and are stopped with it;
Kafka and ministack also stop by themselves once the process that started them is gone (`spawn`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

KAFKA_VERSION = "4.1.1"
MINISTACK_VERSION = "1.5.33"

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.agentstream</groupId><artifactId>local-kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version></dependency>
  </dependencies>
</project>
"""

LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


class ServiceError(RuntimeError):
    """A local service could not be installed or started; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ServiceError(f"{name} is missing: {hint}")
    return path


def open_log(log: Path) -> BinaryIO:
    """A log file for appending, readable by its owner only (0600, in a 0700 folder): a process's
    lines may name customers' businesses and hold what an operator alone should read."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # one created before by an earlier version
    return os.fdopen(fd, "ab")


def _run(cmd: list[str], log: Path, **kw: object) -> None:
    with open_log(log) as out:
        if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kw).returncode != 0:  # type: ignore[call-overload]
            raise ServiceError(f"{' '.join(cmd[:3])}… failed; see {log}")


@dataclass
class Process:
    """A background service process in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 20.0) -> None:
        stop_all([self], timeout)

    def kill(self) -> None:
        """Like a crash: SIGKILL, no clean shutdown."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def stop_all(processes: Iterable[Process], timeout: float = 20.0) -> None:
    """Stop processes together: SIGTERM to each one's group, then wait for all; a group still
    running after `timeout` gets SIGKILL."""
    running = [proc for proc in processes if proc.popen.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()


_lifeline: tuple[int, int] | None = None


def lifeline() -> tuple[int, int]:
    """This process's lifeline, a pipe (read end, write end) made at first use and never closed.
    The write end stays with this process and goes to each component it starts; the read end
    sees end-of-file once all of them are gone, however they died (kill -9 included)."""
    global _lifeline
    if _lifeline is None:
        _lifeline = os.pipe()
    return _lifeline


# `python -c` of this runs first in the child and then execs the command (same process id);
# argv: the lifeline's read end to watch (-1: none), the command. Popen cannot reset the signal
# mask (restore_signals only resets SIGPIPE/SIGXFSZ), and a mask survives exec: a child of a
# thread that blocks SIGTERM (`up`'s supervisor, in sigtimedwait) would ignore its stop. The
# watchdog is a forked child of the command, in its process group (a group stop ends it too).
_CLEAN_EXEC = """
import os, select, signal, sys, time
signal.pthread_sigmask(signal.SIG_SETMASK, ())
for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by this interpreter, not by the command
    signal.signal(sig, signal.SIG_DFL)
watch, command = int(sys.argv[1]), os.getpid()
if watch >= 0 and os.fork() == 0:
    try:
        while os.getppid() == command:  # until the command exits by itself
            if select.select([watch], [], [], 1.0)[0] and not os.read(watch, 1):  # the lifeline broke
                os.kill(command, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while os.getppid() == command and time.monotonic() < deadline:
                    time.sleep(0.1)
                if os.getppid() == command:
                    os.kill(command, signal.SIGKILL)
    finally:
        os._exit(0)
if watch >= 0:
    os.close(watch)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
          lifeline_role: Literal["watch", "hold"] | None = None) -> Process:
    """Start `cmd` in a session of its own, output to `log`, with the default signal mask
    whatever the calling thread blocks.

    lifeline_role="watch" is for programs that are not ours (Kafka, ministack): a watchdog
    SIGTERMs it (SIGKILL 20 s later) once this process and every "hold" child (our components,
    which watch AGENTSTREAM_PARENT_PID and stop cleanly) are gone. So a kill -9 of `up` stops
    the components first, while Kafka and ministack still serve their last commits and lease
    hand-backs, and then those two. Not prctl(PR_SET_PDEATHSIG): it would stop them at once,
    under the components' feet; it fires when the forking *thread* ends, not the process; and
    it needs code between fork and exec (a preexec_fn is unsafe with threads). A pipe's
    end-of-file depends on neither threads nor timing.
    """
    read_end, write_end = lifeline() if lifeline_role else (-1, -1)
    watch = read_end if lifeline_role == "watch" else -1
    fds = {"watch": (read_end,), "hold": (write_end,)}.get(lifeline_role or "", ())
    out = open_log(log)
    popen = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _CLEAN_EXEC, str(watch), *cmd], stdout=out, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, pass_fds=fds,
    )
    out.close()
    return Process(name, popen, log)


def wait_for_port(proc: Process, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise ServiceError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log}")
        if port_open(port):
            return
        time.sleep(0.2)
    proc.stop()
    raise ServiceError(f"{proc.name} did not listen on {port} within {timeout:.0f}s; see {proc.log}")


@dataclass
class LocalHome:
    """The one folder that holds jars, virtualenvs, data and logs of the local stack."""

    root: Path
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.logs = self.root / "logs"

    # ---- Kafka -------------------------------------------------------------------------
    @property
    def kafka_lib(self) -> Path:
        return self.root / "kafka" / "lib"

    def install_kafka(self) -> None:
        """Resolve Kafka's jars from Maven Central once (about 45 jars, 45 MB)."""
        marker = self.kafka_lib / f".kafka-{KAFKA_VERSION}"
        if marker.exists():
            return
        require_tool("java", "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)")
        mvn = require_tool("mvn", "install Maven (Debian: apt-get install maven)")
        build = self.root / "kafka"
        build.mkdir(parents=True, exist_ok=True)
        (build / "pom.xml").write_text(POM)
        self.logs.mkdir(parents=True, exist_ok=True)
        _run(
            [mvn, "-q", "-B", "-f", str(build / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={self.kafka_lib}", "-DincludeScope=runtime"],
            self.logs / "maven.log",
        )
        marker.touch()

    def start_kafka(self, port: int, controller_port: int, data: Path, heap: str = "768m") -> Process:
        self.install_kafka()
        data.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        props = data.parent / f"server-{port}.properties"
        props.write_text(_server_properties(port, controller_port, data))
        log4j = self.root / "kafka" / "log4j.properties"
        log4j.write_text(LOG4J)
        java = ["java", f"-Xmx{heap}", "-Xms128m", f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{self.kafka_lib}/*"]
        if not (data / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            _run([*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster}", "-c", str(props)], self.logs / "kafka-format.log")
        proc = spawn("kafka", [*java, "kafka.Kafka", str(props)], self.logs / f"kafka-{port}.log",
                     lifeline_role="watch")
        wait_for_port(proc, port, timeout=90)
        return proc

    # ---- ministack ---------------------------------------------------------------------
    @property
    def ministack_bin(self) -> Path:
        return self.root / "ministack-venv" / "bin" / "ministack"

    def install_ministack(self) -> None:
        """ministack from PyPI into its own virtualenv."""
        marker = self.root / "ministack-venv" / f".ministack-{MINISTACK_VERSION}"
        if marker.exists():
            return
        venv = self.root / "ministack-venv"
        self.logs.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(venv)], self.logs / "pip.log")
        _run([str(venv / "bin" / "pip"), "install", "-q", f"ministack=={MINISTACK_VERSION}"], self.logs / "pip.log")
        marker.touch()

    def start_ministack(self, port: int, state: Path | None = None) -> Process:
        self.install_ministack()
        env = {"GATEWAY_PORT": str(port), "BIND_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
            env |= {"PERSIST_STATE": "1", "STATE_DIR": str(state)}
        proc = spawn("ministack", [str(self.ministack_bin)], self.logs / f"ministack-{port}.log", env=env, cwd=self.root,
                     lifeline_role="watch")
        wait_for_port(proc, port, timeout=60)
        return proc


def _server_properties(port: int, controller_port: int, data: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=6",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
            "",
        ]
    )
