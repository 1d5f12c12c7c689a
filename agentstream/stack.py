"""`agentstream up`: the whole stack on this machine, and the service start-up the tests share."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentstream.adapters.dynamo.credentials import new_secret_key
from agentstream.local.services import LocalHome, Process, port_open, spawn, stop_all
from agentstream.local.scale import parse_scale, plan, refuse_taken_ports
from agentstream.settings import env_file, home_dir, load_settings
from agentstream.streams.stopping import UPGRADE_EXIT_CODE

DEMO_BUSINESSES = ["demo-salon", "demo-restaurant"]
UP_OWNS = ("DYNAMODB_ENDPOINT_URL", "KAFKA_BOOTSTRAP_SERVERS", "AGENTSTREAM_SECRET_KEY")  # its lines of .env


def secret_key(home: Path) -> str:
    """AGENTSTREAM_SECRET_KEY (from the environment or .env), or a key kept in the home folder."""
    known = load_settings().credentials_key
    if known:
        return known
    path = home / "secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(new_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Services:
    """Kafka and ministack as started (or found running) for this stack."""

    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def stop(self) -> None:
        stop_all(self.processes)


def start_services(home: Path, kafka_port: int = 9092, controller_port: int = 9093, dynamo_port: int = 8000,
                   data: Path | None = None, persist: bool = True) -> Services:
    """Start local Kafka and ministack unless something already listens on their ports."""
    local = LocalHome(home)
    data = data or home / "data"
    services = Services(env={})
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        if not port_open(kafka_port):
            services.processes.append(local.start_kafka(kafka_port, controller_port, data / f"kafka-{kafka_port}"))
        services.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{kafka_port}"
    if not os.environ.get("DYNAMODB_ENDPOINT_URL"):
        if not port_open(dynamo_port):
            state = data / f"ministack-{dynamo_port}" if persist else None
            services.processes.append(local.start_ministack(dynamo_port, state))
        services.env["DYNAMODB_ENDPOINT_URL"] = f"http://127.0.0.1:{dynamo_port}"
    return services


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Set `values` in a `.env` file (readable by its owner only), keeping its other lines."""
    lines = path.read_text().splitlines() if path.exists() else [
        "# Written by `agentstream up` for every agentstream command (and docker compose). `up` refreshes",
        f"# {', '.join(values)}; your own lines stay. Real environment variables win over this file."]
    out: list[str] = []
    done: set[str] = set()
    for line in lines:
        key = line.strip().removeprefix("export ").partition("=")[0].strip()
        if key not in values:
            out.append(line)
        elif key not in done:  # refreshed in place; a later duplicate goes
            out.append(f"{key}={values[key]}")
            done.add(key)
    out += [f"{k}={v}" for k, v in values.items() if k not in done]
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.touch(mode=0o600)
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(path)


def spawn_component(name: str, env: dict[str, str], logs: Path, argv: tuple[str, ...] = ()) -> Process:
    """Run `agentstream NAME` (or `python ARGV`) as its own process (so it can crash and restart on
    its own). It stops when this process dies (AGENTSTREAM_PARENT_PID), and the services this
    process started wait for it (it holds the lifeline, see `spawn`)."""
    cmd = [sys.executable, *(argv or ("-m", "agentstream.cli", name))]
    return spawn(name, cmd, logs / f"{name}.log", env=env | {"AGENTSTREAM_PARENT_PID": str(os.getpid())},
                 lifeline_role="hold")


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not port_open(port):
        time.sleep(0.1)
    if not port_open(port):
        raise RuntimeError(f"nothing listens on {port} after {timeout:.0f}s")


def up(port: int = 8080, kafka_port: int = 9092, kafka_controller_port: int = 9093, dynamodb_port: int = 8000,
       bridge_metrics_port: int = 9101, worker_metrics_port: int = 9102, scale: dict[str, int] | None = None,
       gateway_metrics_port: int = 9103) -> None:
    """Start everything (`scale`: how many of each process, see local/scale.py), print the
    widget's address, and stop it all on Ctrl-C."""
    import asyncio

    from rich.console import Console

    from agentstream.bootstrap import demo_credentials, populate, setup

    console = Console(stderr=True)
    home = home_dir()
    planned = {c.name: c for c in plan(scale or parse_scale(""), port, bridge_metrics_port, worker_metrics_port, gateway_metrics_port)}
    refuse_taken_ports(list(planned.values()), port_open)
    console.print(f"[bold]agentstream up[/] — home {home}")
    services = start_services(home, kafka_port, kafka_controller_port, dynamodb_port)
    env = {**services.env, "AGENTSTREAM_SECRET_KEY": secret_key(home), "GATEWAY_PORT_HTTP": str(port),
           "BRIDGE_IDLE_POLL": os.environ.get("BRIDGE_IDLE_POLL", "0.05"), "AGENTSTREAM_HOME": str(home)}
    os.environ.update(env)
    if dotenv := env_file():
        write_env_file(dotenv, {name: os.environ[name] for name in UP_OWNS})
        console.print(f"settings for other shells written to {dotenv}")
    settings = load_settings()
    components: list[Process] = []
    try:
        asyncio.run(setup(settings))
        asyncio.run(populate(settings))
        for business, api_key in asyncio.run(demo_credentials(settings, DEMO_BUSINESSES)).items():
            console.print(f"REST API key for {business} (shown once): {api_key}")
        components = [spawn_component(c.name, env | c.env, home / "logs", c.argv) for c in planned.values()]
        wait_http(port)
        console.print(f"[bold green]ready[/]: chat widget on http://localhost:{port}/ — metrics on "
                      f":{gateway_metrics_port}/metrics (gateway), :{bridge_metrics_port} (bridge), :{worker_metrics_port} (worker); logs in {home / 'logs'}; Ctrl-C stops all")
        console.print("processes: " + ", ".join(planned))
        _supervise(components, {name: (env | c.env, c.argv) for name, c in planned.items()}, home / "logs")
    finally:
        console.print("stopping…")
        stop_all(components)  # together: each stops cleanly on its own, Kafka and ministack still up
        services.stop()


def _supervise(components: list[Process], how: dict[str, tuple[dict[str, str], tuple[str, ...]]], logs: Path) -> None:
    """Wait for Ctrl-C or SIGTERM; restart a component that exits on its own.

    The two signals are blocked here and taken with sigtimedwait, so neither can cut a restart
    short; the replacements still start with the default mask (see `spawn`) and stop on SIGTERM."""
    import signal

    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    upgrade: set[str] = set()
    while signal.sigtimedwait(stops, 1.0) is None:
        for i, proc in enumerate(components):
            if proc.popen.poll() is None or proc.name in upgrade:
                continue
            if proc.popen.returncode == UPGRADE_EXIT_CODE:  # restarting would meet the same event again
                upgrade.add(proc.name)
                print(f"{proc.name} stopped: the log holds an event this build cannot read; upgrade agentstream "
                      f"(not restarted; log: {proc.log})", file=sys.stderr)
                continue
            print(f"{proc.name} exited with {proc.popen.returncode}; restarting (log: {proc.log})", file=sys.stderr)
            env, argv = how[proc.name]
            components[i] = spawn_component(proc.name, env, logs, argv)
