"""The app's processes (bridge, worker, gateway, delivery) started for end-to-end tests on the real services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.local.services import Process, free_port
from agentstream.settings import Settings
from agentstream.stack import DEMO_BUSINESSES, spawn_component, wait_http


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, in a thread of its own, so pytest-asyncio's
    event loop in the main thread is left alone."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class RunningStack:
    env: dict[str, str]
    port: int
    logs: Path
    api_keys: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)  # the gateway's

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, name: str) -> Process:
        env = self.env | ({"METRICS_PORT": str(self.metrics_port)} if name == "gateway" else {})
        self.processes[name] = spawn_component(name, env, self.logs)
        return self.processes[name]

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.stop()


def prepare(env: dict[str, str]) -> dict[str, str]:
    """Tables, topics, demo data and credentials for a fresh isolated environment."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        s = Settings()
        run_sync(setup(s, partitions=3))
        run_sync(populate(s))
        return run_sync(demo_credentials(s, DEMO_BUSINESSES))
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def running_stack(env: dict[str, str], logs: Path, components: tuple[str, ...] = ("bridge", "worker", "gateway", "delivery")) -> Iterator[RunningStack]:
    port = free_port()
    env = env | {"GATEWAY_PORT_HTTP": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    stack = RunningStack(env, port, logs, prepare(env))
    try:
        for name in components:
            stack.start(name)
        if "gateway" in components:
            wait_http(port, timeout=60)
        yield stack
    finally:
        stack.stop()


def set_credentials(env: dict[str, str], business: str, provider: str, values: dict[str, str]) -> None:
    from agentstream.adapters.dynamo.credentials import CredentialStore
    from agentstream.adapters.dynamo.client import dynamodb_client

    async def run() -> None:
        s = Settings(**{})  # reads os.environ, set below
        async with dynamodb_client(s) as ddb:
            await CredentialStore(ddb, s.tables.credentials, s.credentials_key).set(business, provider, values)

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        run_sync(run())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def log_events(env: dict[str, str], stream: str) -> list:
    """The events of a stream, read from the log."""
    from agentstream.adapters.dynamo.client import dynamodb_client
    from agentstream.adapters.dynamo.event_store import EventStore

    async def run() -> list:
        s = Settings()
        async with dynamodb_client(s) as ddb:
            return await EventStore(ddb, s.tables.events).read(stream)

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return run_sync(run())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_of(stack: RunningStack) -> Settings:
    """The settings the stack's processes run with."""
    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
