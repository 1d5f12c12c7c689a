"""What `agentstream up --scale gateway=2,worker=3,delivery=2,bridge=2,media=2` starts.

Each process kind scales by starting more of the same command: workers, delivery and media processes
share their consumer groups, bridges share the shard leases, gateways sit behind one public port
(a round-robin proxy) on ports of their own. No coordinator of ours is involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("bridge", "worker", "gateway", "delivery", "media")


class ScaleError(ValueError):
    """A --scale value that cannot be run."""


class PortTaken(RuntimeError):
    """A port a planned process must listen on is already in use."""


@dataclass(frozen=True)
class Component:
    """One process: its name (for logs and restarts), its command and its own settings."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[int, ...] = ()  # what it listens on


def parse_scale(text: str) -> dict[str, int]:
    """`gateway=2,worker=3` → counts for every kind (1 where not given)."""
    counts = dict.fromkeys(KINDS, 1)
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, number = part.partition("=")
        if kind not in KINDS:
            raise ScaleError(f"--scale: unknown process {kind!r} (one of {', '.join(KINDS)})")
        if not number.isdigit() or not 1 <= int(number) <= 16:
            raise ScaleError(f"--scale: {kind} needs a count from 1 to 16, not {number!r}")
        counts[kind] = int(number)
    return counts


def plan(counts: dict[str, int], port: int, bridge_metrics_port: int, worker_metrics_port: int,
         gateway_metrics_port: int = 9103) -> list[Component]:
    """The processes to start. One gateway listens on `port` itself; several listen on the ports
    after it, with the proxy on `port`. The first bridge, worker and gateway keep their metrics
    ports; the others take the next ones up, ten apart (9101, 9111, …)."""
    metrics = {"bridge": bridge_metrics_port, "worker": worker_metrics_port, "gateway": gateway_metrics_port}
    out: list[Component] = []
    for kind in KINDS:
        n = counts.get(kind, 1)
        for i in range(n):
            name = kind if n == 1 else f"{kind}-{i + 1}"
            listens = [metrics[kind] + 10 * i] if kind in metrics else []
            env = {"METRICS_PORT": str(listens[0] if listens else 0)}
            if kind == "gateway":
                listens.append(port if n == 1 else port + 1 + i)
                env["GATEWAY_PORT_HTTP"] = str(listens[-1])
            out.append(Component(name, ("-m", "agentstream.cli", kind), env, tuple(listens)))
    if counts.get("gateway", 1) > 1:
        backends = [c.env["GATEWAY_PORT_HTTP"] for c in out if c.argv[-1] == "gateway"]
        out.append(Component("proxy", ("-m", "agentstream.local.proxy", str(port), *backends), {}, (port,)))
    return out


def refuse_taken_ports(components: list[Component], listening: Callable[[int], bool]) -> None:
    """Raise PortTaken for the first port a component needs that something already listens on
    (a gateway that cannot listen would only exit and be restarted, again and again)."""
    for c in components:
        for p in c.ports:
            if listening(p):
                raise PortTaken(f"port {p} is taken (the {c.name} process listens there): stop what uses it "
                                "or pick other ports (--port, --bridge-metrics-port, --worker-metrics-port, --gateway-metrics-port)")
