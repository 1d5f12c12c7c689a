"""`agentstream up --scale`: what it starts."""

from __future__ import annotations

import pytest

from agentstream.local.scale import ScaleError, parse_scale, plan


def test_default_is_one_of_each_on_the_usual_ports() -> None:
    components = plan(parse_scale(""), 8080, 9101, 9102)
    assert [c.name for c in components] == ["bridge", "worker", "gateway", "delivery", "media"]
    assert {c.name: c.env["METRICS_PORT"] for c in components} == {"bridge": "9101", "worker": "9102", "gateway": "9103", "delivery": "0",
                                                                  "media": "0"}
    assert {c.name: c.env.get("GATEWAY_PORT_HTTP") for c in components}["gateway"] == "8080", "the one gateway keeps the public port"
    assert {c.name: c.ports for c in components} == {"bridge": (9101,), "worker": (9102,), "gateway": (9103, 8080), "delivery": (),
                                                     "media": ()}


def test_scaled_gateways_sit_behind_the_proxy_on_the_public_port() -> None:
    components = {c.name: c for c in plan(parse_scale("gateway=2,worker=3,delivery=2,bridge=2,media=2"), 8080, 9101, 9102)}
    assert sorted(components) == ["bridge-1", "bridge-2", "delivery-1", "delivery-2", "gateway-1", "gateway-2",
                                  "media-1", "media-2", "proxy", "worker-1", "worker-2", "worker-3"]
    assert [components[f"gateway-{i}"].env["GATEWAY_PORT_HTTP"] for i in (1, 2)] == ["8081", "8082"]
    assert components["proxy"].argv[-3:] == ("8080", "8081", "8082")
    assert [components[f"worker-{i}"].env["METRICS_PORT"] for i in (1, 2, 3)] == ["9102", "9112", "9122"]
    assert components["worker-2"].argv[-1] == "worker" and components["delivery-2"].argv[-1] == "delivery"
    assert components["media-2"].argv[-1] == "media" and components["media-2"].ports == ()
    assert components["proxy"].ports == (8080,) and components["gateway-2"].ports == (9113, 8082)


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path) -> None:
    """A gateway whose port is taken would exit and be restarted forever: `up` says so and starts nothing."""
    import os
    import socket
    import subprocess
    import sys

    from agentstream.local.services import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = os.environ | {"AGENTSTREAM_HOME": str(tmp_path), "AGENTSTREAM_ENV_FILE": "none"}
        metrics = [str(free_port()) for _ in range(3)]  # not the usual 9101-9103, which a running stack holds
        run = subprocess.run([sys.executable, "-m", "agentstream.cli", "up", "--port", str(port - 1), "--scale", "gateway=2",
                              "--bridge-metrics-port", metrics[0], "--worker-metrics-port", metrics[1],
                              "--gateway-metrics-port", metrics[2]],
                             capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"agentstream: port {port} is taken (the gateway-1 process listens there): "
                                               "stop what uses it or pick other ports (--port, --bridge-metrics-port, "
                                               "--worker-metrics-port, --gateway-metrics-port)"]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "kafka").exists(), "nothing was started"


@pytest.mark.parametrize("text, message", [
    ("gateways=2", "unknown process 'gateways'"), ("worker=0", "from 1 to 16"), ("worker=x", "from 1 to 16"),
    ("worker", "from 1 to 16"),
])
def test_bad_scale_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScaleError, match=message):
        parse_scale(text)


def test_docker_compose_runs_every_process_kind_and_can_scale_each() -> None:
    """`docker compose up --scale KIND=N` needs each kind as a service with no fixed name or host port."""
    import yaml

    from agentstream.local.scale import KINDS
    from tests.services import ROOT

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for kind in KINDS:
        assert services[kind]["command"] == ["agentstream", kind]
        assert "container_name" not in services[kind] and "ports" not in services[kind], kind
    assert services["proxy"]["command"][-2:] == ["8080", "gateway:8080"]
