"""`agentstream up --scale`: what it starts."""

from __future__ import annotations

import pytest

from agentstream.local.scale import ScaleError, parse_scale, plan


def test_default_is_one_of_each_on_the_usual_ports() -> None:
    components = plan(parse_scale(""), 8080, 9101, 9102)
    assert [c.name for c in components] == ["bridge", "worker", "gateway", "delivery"]
    assert {c.name: c.env["METRICS_PORT"] for c in components} == {"bridge": "9101", "worker": "9102", "gateway": "0", "delivery": "0"}
    assert all("GATEWAY_PORT_HTTP" not in c.env for c in components), "the one gateway keeps the public port"


def test_scaled_gateways_sit_behind_the_proxy_on_the_public_port() -> None:
    components = {c.name: c for c in plan(parse_scale("gateway=2,worker=3,delivery=2,bridge=2"), 8080, 9101, 9102)}
    assert sorted(components) == ["bridge-1", "bridge-2", "delivery-1", "delivery-2", "gateway-1", "gateway-2",
                                  "proxy", "worker-1", "worker-2", "worker-3"]
    assert [components[f"gateway-{i}"].env["GATEWAY_PORT_HTTP"] for i in (1, 2)] == ["8081", "8082"]
    assert components["proxy"].argv[-3:] == ("8080", "8081", "8082")
    assert [components[f"worker-{i}"].env["METRICS_PORT"] for i in (1, 2, 3)] == ["9102", "9112", "9122"]
    assert components["worker-2"].argv[-1] == "worker" and components["delivery-2"].argv[-1] == "delivery"


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
