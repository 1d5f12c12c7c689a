"""What every benchmark shares: the real services, isolated table and topic names, figures."""

from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentstream.local.services import LocalHome, free_port
from agentstream.metrics import DYNAMODB_CALLS
from agentstream.settings import Settings, Tables
from agentstream.stack import home_dir


@contextmanager
def services(pids: dict[str, int] | None = None) -> Iterator[dict[str, str]]:
    """Kafka and the local DynamoDB server: the ones configured, or fresh local ones (whose
    process ids go into `pids`, if given)."""
    env: dict[str, str] = {}
    started = []
    home = LocalHome(home_dir())
    if not os.environ.get("DYNAMODB_ENDPOINT_URL"):
        port = free_port()
        started.append(home.start_ministack(port))
        env["DYNAMODB_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        port = free_port()
        data = Path(tempfile.mkdtemp(prefix="agentstream-bench-"))
        started.append(home.start_kafka(port, free_port(), data / "kafka", heap="768m"))
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
    if pids is not None:
        pids.update((proc.name, proc.popen.pid) for proc in started)
        pids.update(_configured_pids())
    try:
        yield env
    finally:
        for proc in reversed(started):
            proc.stop()


def _configured_pids() -> dict[str, int]:
    """The process ids of the configured Kafka and DynamoDB server (the tests' session services),
    when they listen on this machine as this user: their CPU is measured too."""
    ports: dict[str, int | None] = {}
    if url := os.environ.get("DYNAMODB_ENDPOINT_URL"):
        ports["ministack"] = urlsplit(url).port
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        ports["kafka"] = int(servers.split(",")[0].rsplit(":", 1)[1])
    return {name: pid for name, port in ports.items() if port and (pid := listening_pid(port)) is not None}


def listening_pid(port: int) -> int | None:
    """The process (of this user) listening on a local TCP port, found through /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in (line.split() for line in lines):
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
            except OSError:
                continue
    return None


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of named processes, and of this one under `own` (if given), over a phase."""

    def __init__(self, pids: dict[str, int], own: str | None = None) -> None:
        self._pids = pids
        self._own = own

    def read(self) -> dict[str, float]:
        figures = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        if self._own:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            figures[self._own] = usage.ru_utime + usage.ru_stime
        return figures

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """CPU seconds spent by each process since `before` (a `read()`)."""
        now = self.read()
        return {name: now[name] - before[name] for name in before}


def own_ddb_calls() -> float:
    """This process's DynamoDB calls so far (agentstream_dynamodb_calls_total, every operation)."""
    return sum(s.value for metric in DYNAMODB_CALLS.collect() for s in metric.samples if s.name.endswith("_total"))


def isolated_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """Table, topic and group names of this run only, so a benchmark never touches real data."""
    tag = "b" + uuid.uuid4().hex[:8]
    env = dict(base) | {
        "TOPIC_EVENTS": f"{tag}.events", "TOPIC_REPLIES": f"{tag}.replies", "TOPIC_DLQ": f"{tag}.dlq",
        "TOPIC_SHADOW": f"{tag}.shadow", "TOPIC_SIGNALS": f"{tag}.signals",
        "REPLY_AFTER_QUIET_MS": "0",  # a reply per message: the phases that want bursts say so
        "WORKER_GROUP": f"{tag}-worker", "DELIVERY_GROUP": f"{tag}-delivery",
        "AGENTSTREAM_SECRET_KEY": os.environ.get("AGENTSTREAM_SECRET_KEY") or _fernet(),
        "BRIDGE_IDLE_POLL": "0.02", "LOG_LEVEL": "WARNING",
        # the load comes from one address: the per-address limits are for the public, not for a bench
        "LIMIT_VISITORS_PER_ADDRESS": "1000000/hour", "LIMIT_VISITORS_PER_BUSINESS": "1000000/hour",
        "LIMIT_SIGN_IN_PER_ADDRESS": "1000000/hour",
    }
    for spec in Tables.model_fields.values():
        alias = spec.validation_alias
        name = alias.choices[0] if hasattr(alias, "choices") else alias
        env[str(name)] = f"{tag}-{spec.default}"
    return env | extra


def _fernet() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def settings_for(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
            "mean": round(statistics.fmean(values), 1) if values else float("nan")}


def report(name: str, figures: dict[str, Any]) -> None:
    """Figures for a person, then the last line: one JSON object."""
    for key, value in figures.items():
        print(f"{name}.{key}: {value}")
    print(json.dumps({"bench": name, **figures}, separators=(",", ":")))
