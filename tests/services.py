"""Endpoints of the real services the tests use, handed out from one place.

By default the local processes (a KRaft Kafka and ministack, as `agentstream up` runs them)
are started once per test session on free ports. With AGENTSTREAM_TEST_SERVICES=docker the
same images run through testcontainers instead (where a Docker engine exists).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agentstream.adapters.local_services import LocalHome, Process, free_port

ROOT = Path(__file__).resolve().parent.parent


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


def start_docker() -> Endpoints:  # pragma: no cover - needs a Docker engine
    from testcontainers.core.container import DockerContainer
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    kafka.start()
    ministack = DockerContainer("ministackorg/ministack:latest").with_exposed_ports(4566)
    ministack.start()
    url = f"http://{ministack.get_container_host_ip()}:{ministack.get_exposed_port(4566)}"
    return Endpoints(kafka.get_bootstrap_server(), url, containers=[kafka, ministack])


def start() -> Endpoints:
    return start_docker() if os.environ.get("AGENTSTREAM_TEST_SERVICES") == "docker" else start_local()
