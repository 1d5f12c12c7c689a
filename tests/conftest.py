"""Shared fixtures: the real services (once per session) and isolated settings per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is marked by its folder (`integration`, `e2e`) and the browser modules `browser`,
    so `-m "not e2e"` and the like select as the folders do; and by its xdist group, if it has one."""
    for item in items:
        folder = item.path.parent.name
        if folder in ("integration", "e2e"):
            item.add_marker(folder)
        if item.path.name in BROWSER_MODULES:
            item.add_marker("browser")
        if group := xdist_group(item):
            item.add_marker(pytest.mark.xdist_group(group))


def xdist_group(item: pytest.Item) -> str | None:
    """Under `--dist loadgroup` (`make test`): the tests of a module that boots something for all
    of them (a module-scoped fixture) stay on one worker, as do those on the e2e shared stack (one
    boot); any other test goes to whichever worker is free, so the two finish together."""
    if "shared_stack" in getattr(item, "fixturenames", ()):
        return "shared_stack"
    info = getattr(item, "_fixtureinfo", None)
    defs = [d for fixturedefs in (info.name2fixturedefs.values() if info else ()) for d in fixturedefs]
    return item.nodeid.split("::")[0] if any(d.scope in ("module", "package", "class") for d in defs) else None


SHARED = "AGENTSTREAM_TEST_ENDPOINTS"  # "kafka dynamodb": the services xdist's controller started for its workers


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, the controller starts the services once and its workers share them (each
    test has tables and topics of its own), instead of a Kafka and a ministack per worker. Not
    for a run of unit tests alone, which needs none (the workers still start their own if a
    test of such a run asks)."""
    workers = config.getoption("numprocesses", None)
    if (not workers or hasattr(config, "workerinput") or config.option.collectonly or SHARED in os.environ
            or _unit_only(config)):
        return
    eps = start()
    config.stash[_STARTED] = eps
    os.environ[SHARED] = f"{eps.kafka} {eps.dynamodb}"  # the workers, started after this, inherit it


def pytest_unconfigure(config: pytest.Config) -> None:
    eps = config.stash.get(_STARTED, None)
    if eps is not None:
        os.environ.pop(SHARED, None)
        eps.stop()


_STARTED = pytest.StashKey[Endpoints]()
UNIT = Path(__file__).resolve().parent / "unit"


def _unit_only(config: pytest.Config) -> bool:
    paths = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(p == UNIT or UNIT in p.parents for p in paths)


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    """The services: the ones xdist's controller shares, or (a run without workers) its own."""
    if shared := os.environ.get(SHARED):
        kafka, dynamodb = shared.split()
        yield Endpoints(kafka, dynamodb)
        return
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
        "MEDIA_GROUP": f"media-{tag}", "MEDIA_BUCKET": f"media-{tag}",
        "BRIDGE_IDLE_POLL": "0.05",
        "LOG_LEVEL": "INFO",
        "AGENTSTREAM_ENV_FILE": "none",  # also for a process started with only this environment
        "REPLY_AFTER_QUIET_MS": "0",  # a reply per message unless a test's business sets a burst window
        # every test's visitor and owner comes from 127.0.0.1 (20 soak runs of a module: 180 visitors, 40 sign-ins)
        "LIMIT_VISITORS_PER_ADDRESS": "100000/hour", "LIMIT_SIGN_IN_PER_ADDRESS": "100000/hour",
        "LIMIT_SIGN_IN_PER_BUSINESS": "100000/hour",
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
