"""The services under the processes restarted under load: the Kafka broker killed with kill -9 and
started again on its log folder; ministack stopped with SIGTERM and started again on its saved
state (PERSIST_STATE=1: the items survive, the stream's records do not, so reconcile must find and
publish what the stream lost). The load of test_scale_load (3 gateways, 3 workers, 2 delivery, 2
bridges, widget and Twilio customers), on a Kafka and a ministack of this test's own. Checks, as
there: every inbound answered exactly once in the log, every reply delivered in order (widget
frames per socket, Twilio sends), a text sent twice only in the named window (first sent in the
moment before the restart). Each restart's time to recover is printed: from the restart to the
first reply a probe customer gets to a message sent once the service is back. LOAD_MESSAGES sets
the size (tests/sizes.py: 100 in `make test`, 1 000 under soak).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentstream.local.services import LocalHome, Process, free_port
from tests.e2e.stack import log_events, run_sync
from tests.e2e.test_scale_load import (
    PER_CUSTOMER, QUOTED, WINDOW_S, Cluster, Widget, _assert_one_reply_each, _twilio, _widget, load_cluster,
)
from tests.fakes.vendors import VendorServer
from tests.services import ROOT, Endpoints
from tests.sizes import size

pytestmark = [pytest.mark.soak, pytest.mark.timeout(2400)]


@dataclass
class Services:
    """A Kafka and a ministack of this test's own, each restartable on its own data."""

    home: LocalHome
    data: Path
    kafka_port: int
    controller_port: int
    dynamo_port: int
    kafka: Process | None = None
    ministack: Process | None = None

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(f"127.0.0.1:{self.kafka_port}", f"http://127.0.0.1:{self.dynamo_port}")

    def start_kafka(self) -> None:
        self.kafka = self.home.start_kafka(self.kafka_port, self.controller_port, self.data / "kafka", heap="512m")

    def start_ministack(self) -> None:
        self.ministack = self.home.start_ministack(self.dynamo_port, state=self.data / "ministack")

    def kill_kafka(self) -> None:
        assert self.kafka is not None
        self.kafka.kill()  # SIGKILL to its process group: no clean shutdown

    def stop_ministack(self) -> None:
        assert self.ministack is not None
        self.ministack.stop(timeout=60)  # SIGTERM: it saves its state as it stops

    def stop(self) -> None:
        for proc in (self.kafka, self.ministack):
            if proc is not None:
                proc.stop()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    home = LocalHome(Path(os.environ.get("AGENTSTREAM_HOME", ROOT / ".local")))
    own = Services(home, tmp_path / "services", free_port(), free_port(), free_port())
    try:
        own.start_ministack()
        own.start_kafka()
        yield own
    finally:
        own.stop()


@pytest.fixture
def cluster(services: Services, tmp_path: Path) -> Iterator[tuple[Cluster, VendorServer]]:
    with load_cluster(services.endpoints, tmp_path) as running:
        yield running


def _answered(vendors: VendorServer, mark: str) -> bool:
    return any(mark in QUOTED.findall(r.form.get("Body", "")) for r in vendors.state.sent("/Messages.json"))


async def _restart_under_load(running: Cluster, vendors: VendorServer, restart: Callable[[], None],
                              start: Callable[[], None], at: float) -> dict[str, float]:
    """At `at` seconds into the load: the restart (down, then up again); then a probe customer's
    message, retried until accepted; the seconds to the service being back and to its reply."""
    await asyncio.sleep(at)
    began = time.time()
    running.killed_at["service"] = began
    await asyncio.to_thread(restart)
    await asyncio.to_thread(start)
    back = time.time() - began
    probe = (await _twilio(running.port, f"+4076{uuid.uuid4().int % 10**7:07d}", 1, 0.0))[0]
    deadline = time.monotonic() + 600
    while not _answered(vendors, probe) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _answered(vendors, probe), "no reply to the probe within 10 minutes of the restart"
    return {"down_to_up_s": round(back, 1), "to_first_reply_s": round(time.time() - began, 1)}


def _run_load(running: Cluster, vendors: VendorServer, restart: Callable[[], None], start: Callable[[], None],
              name: str) -> None:
    total = int(os.environ.get("LOAD_MESSAGES") or size(100, 1000))
    customers = max(1, total // (2 * PER_CUSTOMER))
    spacing = customers * 2 / 8.0  # about 8 messages a second in all
    deadline = time.monotonic() + PER_CUSTOMER * spacing * 1.5 + 600

    async def load() -> tuple[list[Widget], list[list[str]], dict[str, float]]:
        widgets = [asyncio.create_task(_widget(running.port, PER_CUSTOMER, spacing, deadline)) for _ in range(customers)]
        phones = [f"+4075{i:07d}" for i in range(customers)]
        texts = [asyncio.create_task(_twilio(running.port, p, PER_CUSTOMER, spacing)) for p in phones]
        recovered = await _restart_under_load(running, vendors, restart, start, PER_CUSTOMER * spacing / 3)
        return await asyncio.gather(*widgets), await asyncio.gather(*texts), recovered

    widgets, texted, recovered = run_sync(load())
    wait = time.monotonic() + 300
    while time.monotonic() < wait and not all(_answered(vendors, m) for marks in texted for m in marks):
        time.sleep(0.5)
    for stream in [w.user for w in widgets] + [f"+4075{i:07d}" for i in range(customers)]:
        _assert_one_reply_each(log_events(running.env, f"demo-salon#{stream}"))
    for w in widgets:
        assert len(w.acked) == PER_CUSTOMER, f"unacknowledged messages: {set(w.marks) - set(w.acked)}"
        for frames in w.sockets:
            assert len({f["eventId"] for f in frames}) == len(frames), "a reply twice on one socket"
        first = list(dict.fromkeys(f["inReplyTo"] for s in w.sockets for f in s))
        expected = [w.acked[m] for m in w.marks]
        assert first == expected, f"{w.user}: replies missing {set(expected) - set(first)} or out of order"
    sends = [(marks[0], r.at) for r in vendors.state.sent("/Messages.json") if (marks := QUOTED.findall(r.form.get("Body", "")))]
    counts = Counter(mark for mark, _ in sends)
    for marks in texted:
        assert all(counts[m] >= 1 for m in marks), f"not sent: {[m for m in marks if not counts[m]]}"
        assert [m for m in dict.fromkeys(mark for mark, _ in sends) if m in set(marks)] == marks, "texts out of order"
    first_sent = {mark: at for mark, at in reversed(sends)}
    restarted = running.killed_at["service"]
    twice = sorted(m for m, c in counts.items() if c > 1)
    outside = [m for m in twice if not restarted - WINDOW_S <= first_sent[m] <= restarted]
    assert not outside, f"sent twice outside the restart's window: {outside}"
    asked = sum(p.read_text().count("bridge.reconciling") for p in running.logs.glob("bridge-*.log"))
    print(f"{name}: {total} messages; recovery {recovered}; Twilio sends twice: {len(twice)}; reconciles asked: {asked}")


def test_the_kafka_broker_killed_and_started_again_under_load(cluster: tuple[Cluster, VendorServer], services: Services) -> None:
    running, vendors = cluster
    _run_load(running, vendors, services.kill_kafka, services.start_kafka, "kafka kill -9")


def test_ministack_stopped_and_started_again_on_its_saved_state_under_load(
        cluster: tuple[Cluster, VendorServer], services: Services) -> None:
    running, vendors = cluster
    _run_load(running, vendors, services.stop_ministack, services.start_ministack, "ministack SIGTERM")
