"""Endpoints of the real services the tests use, handed out from one place.

AGENTSTREAM_TEST_SERVICES picks them, once per test session:
- `local` (the default): the local processes (a KRaft Kafka and ministack, as `agentstream up`
  runs them) on free ports;
- `docker`: the images docker-compose.yml runs (apache/kafka, ministackorg/ministack), through
  testcontainers, on a Docker engine of this host. Without one the run stops with one line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentstream.local.services import LocalHome, Process, free_port

ROOT = Path(__file__).resolve().parent.parent
KAFKA_IMAGE = "apache/kafka:4.1.1"  # as docker-compose.yml
MINISTACK_IMAGE = "ministackorg/ministack:latest"
MINISTACK_PORT = 4566  # the image's port (ministack's GATEWAY_PORT default; its README: docker run -p 4566:4566)
KAFKA_ENV = {  # the apache/kafka image turns KAFKA_A_B into a.b; as local/services.py's server.properties
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "KAFKA_NUM_PARTITIONS": "6",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}


class ServicesUnavailable(RuntimeError):
    """The services AGENTSTREAM_TEST_SERVICES asks for cannot run here (a one-line reason)."""


@dataclass
class Endpoints:
    kafka: str
    dynamodb: str
    processes: list[Process] = field(default_factory=list)
    containers: list[object] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for container in self.containers:
            container.stop()  # type: ignore[attr-defined]


def start_local() -> Endpoints:
    home = LocalHome(Path(os.environ.get("AGENTSTREAM_HOME", ROOT / ".local")))
    data = Path(tempfile.mkdtemp(prefix="agentstream-test-"))
    kafka_port, dynamo_port = free_port(), free_port()
    ministack = home.start_ministack(dynamo_port)
    try:
        kafka = home.start_kafka(kafka_port, free_port(), data / "kafka", heap="512m")
    except BaseException:
        ministack.stop()
        raise
    return Endpoints(f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{dynamo_port}", [ministack, kafka])


def start_docker() -> Endpoints:
    """Kafka and ministack from their images, through testcontainers.

    testcontainers' KafkaContainer drives Confluent's cp-kafka image only (its start script, and a
    KRaft check that refuses any tag below 7.0.0, e.g. apache/kafka:4.1.1), so the official image
    runs as a plain container. It listens on the free host port it is published on, so the
    address it advertises (127.0.0.1:port) is right both for the tests and for the broker itself.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

    port = free_port()
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_envs(**KAFKA_ENV, KAFKA_LISTENERS=f"PLAINTEXT://:{port},CONTROLLER://:9093",
                   KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}")
        .with_bind_ports(port, port)
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )
    ministack = (
        DockerContainer(MINISTACK_IMAGE)
        .with_exposed_ports(MINISTACK_PORT)
        .waiting_for(HttpWaitStrategy(MINISTACK_PORT, "/_ministack/health").with_startup_timeout(60))
    )
    started: list[DockerContainer] = []
    try:
        for container in (ministack, kafka):
            container.start()
            started.append(container)
    except BaseException:
        for container in started:
            container.stop()
        raise
    url = f"http://{ministack.get_container_host_ip()}:{ministack.get_exposed_port(MINISTACK_PORT)}"
    return Endpoints(f"127.0.0.1:{port}", url, containers=[kafka, ministack])


def docker_problem() -> str | None:
    """Why no Docker engine answers here (DOCKER_HOST, or the default socket); None if one does."""
    try:
        import docker
    except ImportError:
        return "the docker package is missing (pip install -e '.[dev]' installs testcontainers)"
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return f"{where}: {' '.join(str(exc).split()) or type(exc).__name__}"
    return None


def choose(env: Mapping[str, str] = os.environ) -> Callable[[], Endpoints]:
    """The starter AGENTSTREAM_TEST_SERVICES names: `local` (the default) or `docker`."""
    mode = env.get("AGENTSTREAM_TEST_SERVICES") or "local"
    if mode == "local":
        return start_local
    if mode != "docker":
        raise ServicesUnavailable(f"AGENTSTREAM_TEST_SERVICES={mode!r}: use local (the default) or docker")
    problem = docker_problem()
    if problem:
        raise ServicesUnavailable(f"AGENTSTREAM_TEST_SERVICES=docker but no Docker engine: {problem}")
    return start_docker


def start() -> Endpoints:
    """The chosen services, started; a choice this machine cannot serve ends the run with one line."""
    try:
        starter = choose()
    except ServicesUnavailable as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    return starter()
