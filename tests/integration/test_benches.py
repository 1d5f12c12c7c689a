"""`agentstream bench` on tiny loads against the session's services: every benchmark runs to the
end and its figures add up (the counts match what was sent, nothing lost or repeated). Speed is
never asserted here; the figures themselves come from full runs (README, Benchmarks)."""

from __future__ import annotations

import asyncio

import pytest

from agentstream.bench import bridge, pipeline, replay, worker
from tests.services import Endpoints


@pytest.fixture(autouse=True)
def use_session_services(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmarks start their own Kafka and ministack unless these say where they are."""
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", endpoints.dynamodb)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", endpoints.kafka)


async def test_bridge_bench() -> None:
    figures = await bridge.run(events=600, streams=12, steady_rate=50, steady_seconds=1.0, rounds=1)
    assert figures["bridge_records_per_s"] > 0 and figures["raw_getrecords_records_per_s"] > 0
    assert figures["lag_samples"] == 50 and 0 < figures["lag_p50_ms"] <= figures["lag_p99_ms"]


async def test_replay_bench() -> None:
    figures = await replay.run(users=40, per_user=4)
    assert figures["events"] == 160 and figures["replay_events_per_s"] > 0 and figures["peak_rss_mb"] > 0
    for phase in ("raw_seconds", "replay_seconds"):
        assert figures[phase]["wall_s"] > 0 and figures[phase]["ours"] > 0


async def test_worker_bench() -> None:
    # these benches call asyncio.run themselves: a thread of their own keeps this loop intact
    figures = await asyncio.to_thread(worker.run, users=20, per_user=4, timeout=120)
    assert figures["committed"] == figures["events"] == 80
    assert figures["model_calls"] == 0, "every inbound of the backlog already has its reply"
    assert figures["worker_peak_rss_mb"] > 0 and figures["cpu_seconds_while_worker_ran"]["worker"] > 0


async def test_pipeline_bench() -> None:
    figures = await asyncio.to_thread(pipeline.run, conversations=4, turns=2, model_ms=10, rate=10, seconds=2.5)
    assert figures["replies"] == 8 and (figures["lost"], figures["duplicates"], figures["reorders"]) == (0, 0, 0)
    assert figures["latency_samples"] == 25, "25 sockets, one message each, every one answered"
    hops = [f"hop_{name}_p50_ms" for name in ("bridge", "worker", "reply_publish", "delivery")]
    assert all(figures[h] >= 0 for h in hops)
    for phase in ("cpu_ms_per_turn", "cpu_ms_per_steady_message"):
        assert {"bridge", "worker", "gateway", "load_and_model"} <= figures[phase].keys()
        assert figures[phase]["worker"] > 0 and figures[phase]["total"] > 0

