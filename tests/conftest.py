"""Shared fixtures: the real services (once per session) and isolated settings per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import AliasChoices

from agentstream.settings import Settings, Tables
from tests.services import Endpoints, start

# Never the project's .env (an OPENAI_API_KEY there must not make a test call a real model): set
# before any test loads settings (they read .env at each load), inherited by every process a test starts.
os.environ["AGENTSTREAM_ENV_FILE"] = "none"
os.environ.setdefault("LOG_FORMAT", "console")

BROWSER_MODULES = {"test_browser.py", "test_inbox_browser.py", "test_bursts_browser.py"}  # headless Chromium through Playwright


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is marked by its folder (`integration`, `e2e`) and the browser modules `browser`,
    so `-m "not e2e"` and the like select as the folders do."""
    for item in items:
        folder = item.path.parent.name
        if folder in ("integration", "e2e"):
            item.add_marker(folder)
        if item.path.name in BROWSER_MODULES:
            item.add_marker("browser")


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    eps = start()
    yield eps
    eps.stop()


def isolated_env(endpoints: Endpoints, **extra: str) -> dict[str, str]:
    """Environment for one test: the real services, and table and topic names of its own."""
    tag = uuid.uuid4().hex[:8]
    env = {
        "DYNAMODB_ENDPOINT_URL": endpoints.dynamodb,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka,
        "AGENTSTREAM_SECRET_KEY": Fernet.generate_key().decode(),
        "TOPIC_EVENTS": f"t{tag}.events", "TOPIC_REPLIES": f"t{tag}.replies", "TOPIC_DLQ": f"t{tag}.dlq",
        "TOPIC_SHADOW": f"t{tag}.shadow",
        "TOPIC_HANDOFFS": f"t{tag}.handoffs",
        "TOPIC_SIGNALS": f"t{tag}.signals",
        "KAFKA_PARTITIONS": "3",
        "WORKER_GROUP": f"worker-{tag}", "DELIVERY_GROUP": f"delivery-{tag}", "ANALYTICS_GROUP": f"analytics-{tag}",
        "BRIDGE_IDLE_POLL": "0.05",
        "LOG_LEVEL": "INFO",
        "AGENTSTREAM_ENV_FILE": "none",  # also for a process started with only this environment
        "REPLY_AFTER_QUIET_MS": "0",  # a reply per message unless a test's business sets a burst window
    }
    for spec in Tables.model_fields.values():
        alias = spec.validation_alias
        name = alias.choices[0] if isinstance(alias, AliasChoices) else alias
        env[str(name)] = f"{tag}-{spec.default}"
    return env | extra


@pytest.fixture
def env(endpoints: Endpoints) -> dict[str, str]:
    return isolated_env(endpoints)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings read from `env`, which stays in the environment for the rest of the test."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    return settings_from(env, monkeypatch)
