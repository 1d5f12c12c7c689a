"""Processes and services killed under load (tests/e2e/load.py), on one cluster and a Kafka and a
ministack of this module's own, each test with customers of its own:
- each kind of our processes killed with kill -9 in turn and restarted;
- the Kafka broker killed with kill -9 and started again on its log folder;
- ministack stopped with SIGTERM and started again 20 s later on its saved state (PERSIST_STATE=1:
  the items survive, the stream's records do not, so reconcile must find and publish what the
  stream lost).

Each restart's time to recover is printed: from the restart to the first reply a probe customer
gets to a message sent once the service is back. LOAD_MESSAGES sets the size (tests/sizes.py:
200 and 100 in `make test`, 1 000 in `make soak`'s full-size run).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from agentstream.local.services import LocalHome
from tests.e2e.load import Cluster, Services, _twilio, check, load_cluster, run_load, texted_answered
from tests.fakes.vendors import VendorServer
from tests.services import ROOT
from tests.sizes import size

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    own = Services(LocalHome(Path(os.environ.get("AGENTSTREAM_HOME", ROOT / ".local"))), tmp_path_factory.mktemp("services"))
    try:
        own.start_ministack()
        own.start_kafka()
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def cluster(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, VendorServer]]:
    with load_cluster(services.endpoints, tmp_path_factory.mktemp("logs")) as running:
        yield running


def total(make_test: int) -> int:
    return int(os.environ.get("LOAD_MESSAGES") or size(make_test, 1000))


def test_every_message_answered_once_in_order_while_each_kind_is_killed(cluster: tuple[Cluster, VendorServer]) -> None:
    running, vendors = cluster
    killed = ("gateway-2", "worker-1", "delivery-1", "bridge-1")
    running.kills.clear()

    async def kills(lasts: float) -> None:
        for name in killed:  # a fifth of the load apart
            await asyncio.sleep(lasts / 5)
            await asyncio.to_thread(running.kill_and_restart, name)

    load = run_load(running, total(200), kills, slack_s=240)
    assert running.kills == list(killed)
    twice = check(running, vendors, load, running.killed_at["delivery-1"], wait_s=120)
    print(f"{sum(map(len, load.texted)) * 2} messages; Twilio sends twice: {twice}")


def _restart(running: Cluster, vendors: VendorServer, down: Callable[[], None], up: Callable[[], None],
             recovered: dict[str, float], down_for_s: float) -> Callable[[float], Awaitable[None]]:
    """A third into the load: the restart (down, `down_for_s` later up again); then a probe
    customer's message, retried until accepted; the seconds to the service being back and to the
    probe's reply."""

    async def during(lasts: float) -> None:
        await asyncio.sleep(lasts / 3)
        began = time.time()
        running.killed_at["service"] = began
        await asyncio.to_thread(down)
        await asyncio.sleep(down_for_s)
        await asyncio.to_thread(up)
        recovered["down_to_up_s"] = round(time.time() - began, 1)
        probe = set(await _twilio(running.port, f"+4076{uuid.uuid4().int % 10**7:07d}", 1, 0.0))
        deadline = time.monotonic() + 600
        while not texted_answered(vendors, probe) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert texted_answered(vendors, probe), "no reply to the probe within 10 minutes of the restart"
        recovered["to_first_reply_s"] = round(time.time() - began, 1)

    return during


def _under_load(cluster: tuple[Cluster, VendorServer], down: Callable[[], None], up: Callable[[], None], name: str,
                down_for_s: float = 0.0) -> None:
    running, vendors = cluster
    recovered: dict[str, float] = {}
    reconciles = _reconciles(running)
    load = run_load(running, total(100), _restart(running, vendors, down, up, recovered, down_for_s), slack_s=600)
    twice = check(running, vendors, load, running.killed_at["service"], wait_s=300)
    print(f"{name}: recovery {recovered}; Twilio sends twice: {twice}; reconciles asked: {_reconciles(running) - reconciles}")


def _reconciles(running: Cluster) -> int:
    return sum(p.read_text(errors="replace").count("bridge.reconciling") for p in running.logs.glob("bridge-*.log"))


@pytest.mark.soak  # `make soak` runs each restart 20 times in a row, on the one cluster
def test_the_kafka_broker_killed_and_started_again_under_load(cluster: tuple[Cluster, VendorServer], services: Services) -> None:
    _under_load(cluster, services.kill_kafka, services.start_kafka, "kafka kill -9")


@pytest.mark.soak
def test_ministack_stopped_and_started_again_on_its_saved_state_under_load(
        cluster: tuple[Cluster, VendorServer], services: Services) -> None:
    # down for longer than a bridge's discovery round and its leases: every process rides it out
    _under_load(cluster, services.stop_ministack, services.start_ministack, "ministack SIGTERM", down_for_s=20)
