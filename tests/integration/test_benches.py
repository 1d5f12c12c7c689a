"""`agentstream bench` on tiny loads against the session's services: every benchmark runs to the
end and its figures add up (the counts match what was sent, nothing lost or repeated). Speed is
never asserted here; the figures themselves come from full runs (README, Benchmarks)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.bench import bridge, pipeline, replay, worker
from agentstream.events import new_event
from agentstream.metrics import APPEND_CONFLICTS, DYNAMODB_CALLS
from agentstream.settings import Settings
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
    figures = await asyncio.to_thread(worker.run, users=20, per_user=4, timeout=120, rounds=1)
    assert figures["committed"] == figures["events"] == 80
    assert figures["model_calls"] == 0, "every inbound of the backlog already has its reply"
    assert figures["worker_peak_rss_mb"] > 0 and figures["cpu_seconds_while_worker_ran"]["worker"] > 0
    assert figures["faust_noop_events_per_s"] > 0
    # a new group starts at the saved positions: each start answered its new customer, and the
    # applied events behind the resumed one cost it no DynamoDB call more than a restart
    assert figures["starts_answered"] == 2
    assert figures["resumed_calls"] == figures["restart_calls"], (figures["resumed_calls"], figures["restart_calls"])
    assert figures["reread_calls_per_event"]["BatchGetItem"] > 0, "without them, each conversation is loaded again"
    ours = {op: n for op, n in figures["worker_calls_per_event"].items() if op != "Scan"}  # the positions, at start
    loop = figures["bare_loop_calls_per_event"]
    assert figures["bare_loop_events_per_s"] > 0 and loop.keys() == ours.keys(), (ours, loop)
    # the worker's calls are the loop's, plus a read or two of business data as it starts (and no
    # session timer, whose rounds would expire the backlog's long-idle sessions)
    extra = {op: round((ours[op] - n) * 80) for op, n in loop.items()}
    assert all(0 <= more <= 2 for more in extra.values()), f"the bare loop makes the worker's calls: {ours} {loop}"


def _counted(metric: object) -> float:
    return sum(s.value for m in metric.collect() for s in m.samples if s.name.endswith("_total"))  # type: ignore[attr-defined]


def _lost(kind: str) -> float:
    return sum(s.value for m in APPEND_CONFLICTS.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels["type"] == kind)


async def test_counters_count_each_call_and_each_lost_race(settings: Settings) -> None:
    """What the pipeline bench reads from each process's /metrics counts what happened: an
    append with a stale head is one conflict and four calls in all (put, failed put, head, put)."""
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables, only=[settings.tables.events])
        store = EventStore(ddb, settings.tables.events)
        calls, conflicts, lost = _counted(DYNAMODB_CALLS), _counted(APPEND_CONFLICTS), _lost("MessageReceived")
        user = f"counted-{uuid.uuid4().hex[:8]}"
        first = await store.append(_message(user, "first"), head=0)
        second = await store.append(_message(user, "second"), head=0)  # stale: seq 1 is taken
    assert (first.event.seq, second.event.seq) == (1, 2)
    assert _counted(APPEND_CONFLICTS) - conflicts == 1
    assert _lost("MessageReceived") - lost == 1, "counted under the type of the event that lost the race"
    assert _counted(DYNAMODB_CALLS) - calls == 4


def _message(user: str, text: str) -> object:
    return new_event("MessageReceived", business_id="b1", user_id=user, channel="sms", payload={"content": text})


@pytest.mark.timeout(900)  # every phase, on a loaded machine; its figures are targets for the bench, not here
async def test_pipeline_bench() -> None:
    conversations, turns = 4, 2
    figures = await asyncio.to_thread(pipeline.run, conversations=conversations, turns=turns, model_ms=10, rate=10,
                                      seconds=2.5, half_seconds=3.0, probe_rate=5, probe_seconds=2.0, pairs=1,
                                      stream_conversations=2, one_stack=True)
    assert figures["replies"] == 8 and (figures["lost"], figures["duplicates"], figures["reorders"]) == (0, 0, 0)
    assert figures["ours_over_direct_cpu_pairs"] == [figures["ours_over_direct_cpu"]]  # the median of several: unit/test_bench_figures.py
    assert figures["latency_samples"] == 20, "10 sockets, two messages each, every one answered"
    hops = [f"hop_{name}_p50_ms" for name in ("bridge", "worker", "reply_publish", "delivery")]
    assert all(figures[h] >= 0 for h in hops)
    for name in ("streamed_window_0", "streamed_burst"):  # each probe answered in streamed pieces, the log verified
        assert figures[name]["measured"] == figures[name]["conversations"] and figures[name]["verify_differences"] == 0
    assert figures["targets"]["streamed_verify_differences"]["met"]
    for phase in ("cpu_ms_per_turn", "cpu_ms_per_steady_message"):
        assert {"bridge", "worker", "gateway", "load_and_model", "ministack", "kafka"} <= figures[phase].keys()
        assert figures[phase]["worker"] > 0 and figures[phase]["ministack"] > 0 and figures[phase]["total"] > 0
    _check_counted_calls(figures)
    _check_ratios(figures, conversations, turns)
    _check_half_capacity(figures)
    assert figures["targets"]["ours_over_direct_cpu"]["value"] == figures["ours_over_direct_cpu"]
    assert {"target", "value", "met"} <= figures["targets"]["append_conflicts_per_turn"].keys()


def _check_counted_calls(figures: dict) -> None:
    """Bounds from the calls a turn must make: the gateway at least writes the inbound, the
    worker the reply (in both phases the messages come through the gateway, so the bench itself
    calls nothing); today a message takes about 6 to 15, so over 30 would be a counting fault."""
    by_process = figures["ddb_calls_per_turn_by_process"]
    assert figures["load_ddb_calls_per_turn"] == 0
    assert by_process["gateway"] >= 1.0 and by_process["worker"] >= 1.0 and 2.0 <= figures["ddb_calls_per_turn"] <= 30
    assert figures["ddb_calls_per_turn"] == pytest.approx(sum(by_process.values()), abs=0.05)
    steady = figures["steady_ddb_calls_per_message_by_process"]
    assert steady["gateway"] >= 1.0 and steady["worker"] >= 1.0 and 2.0 <= figures["steady_ddb_calls_per_message"] <= 30
    assert figures["streams_calls_per_turn"] > 0, "the bridge reads the table's stream"


def _check_ratios(figures: dict, conversations: int, turns: int) -> None:
    """Ratios of measured CPU; the direct flow's calls are exact: 6 a message, a new session per
    customer, the business read once (info, instructions, RAG)."""
    direct = figures["direct"]
    n = conversations * turns
    assert direct["turns"] == n and direct["ddb_calls_per_turn"] == round(6 + (conversations + 3) / n, 2)
    assert direct["cpu_ms_per_turn"]["direct"] > 0 and direct["cpu_ms_per_turn"]["ministack"] > 0
    per_turn = figures["cpu_ms_per_turn"]
    ours = per_turn["gateway"] + per_turn["bridge"] + per_turn["worker"]
    assert figures["ours_over_ministack_cpu"] == pytest.approx(ours / per_turn["ministack"], rel=0.05)
    whole = ours + per_turn["ministack"] + per_turn["kafka"]
    assert figures["whole_stack_cpu_ms_per_turn"] == pytest.approx(whole, abs=0.5)
    assert figures["ours_over_direct_cpu"] == pytest.approx(whole / direct["cpu_ms_per_turn"]["total"], rel=0.05)


def _check_half_capacity(figures: dict) -> None:
    """The rate follows from the probe; every message of the phase is answered (a socket a
    message a second, 25 sockets at most, each sending at least once in the 3 s)."""
    probe = figures["capacity_probe"]
    assert probe["cpu_ms_per_message"] > 0 and 0 < probe["cores_available"] <= probe["cores"]
    assert 0 <= figures["half_capacity_other_programs_cores"] <= probe["cores"]
    rate = figures["half_capacity_rate_per_s"]
    assert rate == pytest.approx(probe["rate_per_s"] / 2, abs=0.1)
    sockets = max(1, min(25, int(rate)))
    assert figures["half_capacity_samples"] == sockets * max(1, int(3.0 / (sockets / rate)))
    assert 0 < figures["half_capacity_p50_ms"] <= figures["half_capacity_p99_ms"]
    assert 0 < figures["half_capacity_kafka_rtt_p50_ms"] <= figures["half_capacity_kafka_rtt_p99_ms"]
    ratio = figures["half_capacity_p50_ms"] / figures["half_capacity_kafka_rtt_p50_ms"]
    assert figures["half_capacity_p50_over_kafka_rtt"] == pytest.approx(ratio, abs=0.1)
