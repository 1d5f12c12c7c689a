"""AGENTSTREAM_TEST_SERVICES: which services a test session starts, and one line when it cannot."""

from __future__ import annotations

import pytest

from tests import services
from tests.services import ServicesUnavailable, choose

NO_ENGINE = {"AGENTSTREAM_TEST_SERVICES": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def test_local_processes_by_default() -> None:
    assert choose({}) is services.start_local
    assert choose({"AGENTSTREAM_TEST_SERVICES": "local"}) is services.start_local


def test_docker_without_an_engine_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])  # docker.from_env reads the process's environment
    with pytest.raises(ServicesUnavailable) as caught:
        choose(NO_ENGINE)
    reason = str(caught.value)
    assert reason.startswith("AGENTSTREAM_TEST_SERVICES=docker but no Docker engine: ")
    assert "\n" not in reason and len(reason) > len("AGENTSTREAM_TEST_SERVICES=docker but no Docker engine: ")


def test_the_session_stops_with_that_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in NO_ENGINE.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(pytest.exit.Exception) as caught:
        services.start()
    assert str(caught.value.msg).startswith("AGENTSTREAM_TEST_SERVICES=docker but no Docker engine: ")
    assert caught.value.returncode == pytest.ExitCode.USAGE_ERROR


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ServicesUnavailable, match="AGENTSTREAM_TEST_SERVICES='dokcer': use local"):
        choose({"AGENTSTREAM_TEST_SERVICES": "dokcer"})
