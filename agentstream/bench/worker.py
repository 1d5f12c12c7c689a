"""`agentstream bench worker`: the worker process on a backlog of already-logged events, then on
the same events once they are applied.

100 000 events from 10 000 users (an inbound message and its reply, alternately, with the
reply's idempotency record, as the live path leaves them) are written to the events table and
to the events topic before the worker starts. Figures:

- the worker's rate (events folded, projected and acked, until its consumer group's lag is 0)
  against a bare aiokafka consumer reading the same topic in the same run, and against a bare
  loop making the worker's DynamoDB calls for each event with the worker's client and
  concurrency (bare_loop.py; target ≥ 0.7), with both's calls per event by operation;
- what the applied events cost a worker whose group has no offsets (a new group, nothing
  cached: as after an offset reset), which starts from the positions saved (positions.py): a new
  customer's first message is put after them, and the worker is timed from its spawn to that
  message committed; then another message, and a worker of the same group, now at the topic's
  end, is timed the same way (a restart, with nothing behind it). The difference (median of
  pairs) is what the applied events cost; the events over it are the rate, against the bare
  consumer (target ≥ 0.3); both starts' DynamoDB calls (the same when the applied events cost
  none);
- the same without saved positions (WORKER_POSITIONS_EVERY=0: every event read again, each
  known from its key and seq), against the bare consumer and against a Faust agent that only
  acks each record (`faust_noop`, the worker's own app): the ceiling Faust's per-record dispatch
  puts on a worker built on it;
- the worker's peak RSS (VmHWM; target < 300 MB);
- model calls on the backlog (0: every inbound already has its reply in the log);
- the CPU seconds of the worker (and of Kafka and ministack, when the run started them) while
  it worked through the backlog, which show what bounds its rate; the worker's and the bare
  loop's CPU over ministack's for the same calls (`worker_over_ministack_cpu`,
  `bare_loop_over_ministack_cpu`): the second is what the client side of those calls costs
  with nothing else around it.

Smaller runs: BENCH_WORKER_USERS and BENCH_WORKER_EVENTS_PER_USER (defaults 10 000 and 10).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from agentstream import loops
from agentstream.bootstrap import populate, setup
from agentstream.adapters.dynamo.client import dynamodb_client, put_log_items
from agentstream.adapters.dynamo.event_store import idem_item
from agentstream.adapters.kafka.client import dumps, event_headers, producer, send_keyed
from agentstream.bench.bare_loop import bare_loop_rate, stored_states
from agentstream.bench.common import CpuMeter, isolated_env, peak_rss_mb, report, services, settings_for
from agentstream.bench.fresh import labelled, scrape
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from agentstream.bench.replay import _events
from agentstream.events import parse_event
from agentstream.local.services import free_port
from agentstream.settings import Settings
from agentstream.stack import spawn_component
from agentstream.streams.reply_policy import reply_key

PARTITIONS = 6


def _with_idempotency(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events and, for each reply, the `reply:<inbound>` record its append wrote."""
    replies = [parse_event(e) for e in events if e["type"] == "ReplyGenerated"]
    return events + [idem_item(r.businessId, reply_key(r.payload.inReplyTo), r) for r in replies]


async def _log(s: Settings, users: int, per_user: int, tables: tuple[str, ...]) -> int:
    """Write the backlog into each of the events `tables`, then onto the topic (as the bridge
    would); returns its size."""
    sent = 0
    prod = producer(s, linger_ms=20)
    await prod.start()
    try:
        async with dynamodb_client(s) as ddb:
            for first in range(0, users, 500):  # a slice of users at a time keeps the loader small
                events = [e for u in range(first, min(users, first + 500)) for e in _events(u, per_user)]
                for table in tables:
                    await put_log_items(ddb, table, _with_idempotency(events))
                # one stream's events in seq order, streams interleaved as they would arrive live
                events.sort(key=lambda e: (e["seq"], e["streamId"]))
                await _publish(prod, s, events)
                sent += len(events)
    finally:
        await prod.stop()
    return sent


async def _publish(prod: Any, s: Settings, events: list[dict[str, Any]]) -> None:
    """Put logged events on the events topic as the bridge does (its key, headers and batches)."""
    records = [(e["streamId"].encode(), dumps(e), event_headers(e["seq"], e["type"])) for e in events]
    await asyncio.gather(*await send_keyed(prod, s.topic_events, records))


async def _new_customer(s: Settings, user: int) -> None:
    """A new customer's first message, logged and on the topic (as the gateway and the bridge
    leave one)."""
    events = _events(user, 1)
    prod = producer(s)
    await prod.start()
    try:
        async with dynamodb_client(s) as ddb:
            await put_log_items(ddb, s.tables.events, events)
        await _publish(prod, s, events)
    finally:
        await prod.stop()


async def _bare_rate(s: Settings, total: int) -> float:
    """A bare aiokafka consumer reading the whole topic: records/s."""
    consumer = AIOKafkaConsumer(s.topic_events, bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    count, start = 0, time.perf_counter()
    try:
        while count < total:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                count += len(records)
        return count / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def _committed(admin: AIOKafkaAdminClient, s: Settings, group: str) -> int:
    """How many records of the events topic `group` has committed."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # the broker's offsets topic is not there yet
        return 0
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == s.topic_events and meta.offset > 0)


async def _wait_worker(s: Settings, total: int, pid: int, timeout: float, group: str,
                       step: float = 0.5) -> dict[str, float]:
    """Poll `group`'s committed offsets until its lag is 0; the rate counts from the first commit
    (so the process's start-up is left out), or from the start if that commit was the last."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    started = time.perf_counter()
    first: tuple[float, int] | None = None
    done = 0
    try:
        while time.perf_counter() - started < timeout:
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError("the consumer exited; see its log")
            done = await _committed(admin, s, group)
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done >= total:
                break
            await asyncio.sleep(step)
    finally:
        await admin.close()
    end = time.perf_counter()
    t0, n0 = first or (end, 0)
    if done <= n0:  # a backlog small enough to be done at the first look: count from the start
        t0, n0 = started, 0
    rate = (done - n0) / (end - t0) if end > t0 else 0.0
    return {"committed": done, "wall_s": end - started, "rate": rate, "first_commit_s": t0 - started}


@dataclass
class Consumed:
    """One consumer group's pass over the whole topic."""

    rate: float
    wall_s: float
    first_commit_s: float
    committed: int
    cpu: dict[str, float]
    rss_mb: float
    calls: dict[str, float]  # DynamoDB calls by operation, from the process's /metrics

    def calls_per_event(self, events: int) -> dict[str, float]:
        return {op: round(n / max(events, 1), 3) for op, n in self.calls.items()}


def _consume(env: dict[str, str], s: Settings, pids: dict[str, int], logs: Path, name: str, group: str, total: int,
             timeout: float, argv: tuple[str, ...] = (), step: float = 0.5) -> Consumed:
    """Run `name` (the worker, or `argv`) in its own consumer group over the whole topic, until the
    group's lag is 0 (looked for every `step` seconds): its rate, the CPU seconds of every process
    meanwhile, its peak RSS."""
    port = free_port()
    proc = spawn_component(name, env | {"WORKER_GROUP": group, "METRICS_PORT": str(port)}, logs, argv)
    try:
        meter = CpuMeter(pids | {name: proc.popen.pid})
        before = meter.read()
        waited = asyncio.run(_wait_worker(s, total, proc.popen.pid, timeout, group, step))
        cpu = {n: round(seconds, 1) for n, seconds in meter.since(before).items()}
        rss = peak_rss_mb(proc.popen.pid)
        calls = labelled(scrape(f"http://127.0.0.1:{port}/metrics"), "dynamodb") if not argv else {}
    finally:
        proc.stop()
    counted = {op: n for op, n in sorted(calls.items()) if n}
    return Consumed(waited["rate"], waited["wall_s"], waited["first_commit_s"], int(waited["committed"]), cpu, rss, counted)


STEP_S = 0.05  # how often a start's commit is looked for


def _starts(env: dict[str, str], s: Settings, pids: dict[str, int], logs: Path, size: int, first_user: int,
            rounds: int, timeout: float) -> list[tuple[Consumed, Consumed]]:
    """Per round, a pair: a new customer's message, then a worker in a new group, which starts
    from the saved positions (every event before the message applied by then); another message,
    then a worker of that group again, now at the topic's end (a restart). Each is timed until
    its group has committed the message (answered it)."""
    # no timed save of positions during a start (its PutItem would count in one start and not the
    # other); the save as it stops is kept: the next pair's new group starts from it
    env = env | {"WORKER_POSITIONS_EVERY": "3600"}
    pairs = []
    for i in range(rounds):
        group = f"{s.worker_group}-again{i}"
        pair = []
        for _ in ("resumed", "restarted"):
            asyncio.run(_new_customer(s, first_user + 2 * i + len(pair)))
            size += 1
            pair.append(_consume(env, s, pids, logs, "worker", group, size, timeout, step=STEP_S))
        pairs.append((pair[0], pair[1]))
    return pairs


def _applied_figures(pairs: list[tuple[Consumed, Consumed]], events: int, bare: float) -> dict[str, Any]:
    """What the applied events cost a resumed worker: its start over a restart's (median of the
    pairs), and the events over that as a rate. A difference under the step the commits are looked
    for at is taken as that step (the rate is then at least the one reported)."""
    extra = statistics.median(r.wall_s - q.wall_s for r, q in pairs)
    rate = events / max(extra, STEP_S)
    return {
        "applied_events_per_s": round(rate), "applied_vs_bare": round(rate / bare, 4), "target_applied_vs_bare": 0.3,
        "applied_extra_s": round(extra, 2), "applied_step_s": STEP_S,
        "resumed_start_s": [round(r.wall_s, 2) for r, _ in pairs],
        "restart_start_s": [round(q.wall_s, 2) for _, q in pairs],
        "resumed_calls": pairs[-1][0].calls, "restart_calls": pairs[-1][1].calls,
    }


def _over_ministack(cpu: dict[str, float], name: str) -> float | None:
    """`name`'s CPU seconds over ministack's in the same window."""
    return round(cpu[name] / cpu["ministack"], 3) if cpu.get("ministack") and name in cpu else None


def run(users: int = 10_000, per_user: int = 10, timeout: float = 3600, rounds: int = 3) -> dict[str, Any]:
    """The worker on the backlog; a fresh worker (new group, nothing cached) reading the same
    events again, all applied by then; a no-op Faust agent and a bare aiokafka consumer on the
    topic; then `rounds` pairs of a resumed worker and a restarted one (`_starts`)."""
    pids: dict[str, int] = {}
    with services(pids) as base, ModelServer(ModelBehaviour(delay_s=0.0)) as model:
        # no timers: the backlog's sessions are long idle, and expiring them, reminding or releasing
        # budget handoffs is not the work measured
        env = isolated_env(base, OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=model.base_url,
                           KAFKA_PARTITIONS=str(PARTITIONS), SESSION_TIMER_EVERY="0", REMINDER_TIMER_EVERY="0",
                           SPEND_RELEASE_EVERY="0")
        s = settings_for(env)
        loop_s = settings_for(isolated_env(base, TOPIC_EVENTS=s.topic_events))  # the bare loop's own tables
        asyncio.run(setup(s, partitions=PARTITIONS))
        asyncio.run(setup(loop_s, partitions=PARTITIONS))
        asyncio.run(populate(s))
        started = time.perf_counter()
        total = asyncio.run(_log(s, users, per_user, (s.tables.events, loop_s.tables.events)))
        load_s = time.perf_counter() - started
        logs = Path(tempfile.mkdtemp(prefix="agentstream-bench-logs-"))
        backlog = _consume(env, s, pids, logs, "worker", s.worker_group, total, timeout)
        model_calls = len(model.behaviour.requests)
        reread = _consume(env | {"WORKER_POSITIONS_EVERY": "0"}, s, pids, logs, "worker", f"{s.worker_group}-reread",
                          total, timeout)
        noop = _consume(env, s, pids, logs, "faust-noop", f"{s.worker_group}-noop", total, timeout,
                        ("-m", "agentstream.bench.faust_noop"))
        states = asyncio.run(stored_states(s))  # the items the worker left, which the loop writes
        loop_cpu = CpuMeter(pids, own="bare_loop")
        loop_before = loop_cpu.read()
        loop = loops.run(bare_loop_rate(loop_s, total, states), s.event_loop)  # on the worker's loop
        loop_spent = {n: round(seconds, 1) for n, seconds in loop_cpu.since(loop_before).items()}
        bare = loops.run(_bare_rate(s, total), s.event_loop)
        pairs = _starts(env, s, pids, logs, total, users, rounds, timeout)
        answered = len(model.behaviour.requests) - model_calls
    return {
        "events": total, "users": users, "committed": backlog.committed,
        "worker_events_per_s": round(backlog.rate), "bare_consumer_events_per_s": round(bare),
        "worker_vs_bare": round(backlog.rate / bare, 4),
        "bare_loop_events_per_s": round(loop.rate), "worker_vs_bare_loop": round(backlog.rate / loop.rate, 3),
        "target_worker_vs_bare_loop": 0.7, "worker_calls_per_event": backlog.calls_per_event(total),
        "bare_loop_calls_per_event": loop.calls_per_event, "cpu_seconds_while_bare_loop_ran": loop_spent,
        # the client's side of the same DynamoDB calls against ministack's (ours over ministack, per process)
        "worker_over_ministack_cpu": _over_ministack(backlog.cpu, "worker"),
        "bare_loop_over_ministack_cpu": _over_ministack(loop_spent, "bare_loop"),
        # a new group starting from the saved positions, against a restart
        **_applied_figures(pairs, total, bare), "starts_answered": answered,
        # a new group reading every applied event again (WORKER_POSITIONS_EVERY=0)
        "reread_events_per_s": round(reread.rate), "reread_vs_bare": round(reread.rate / bare, 4),
        "reread_calls_per_event": reread.calls_per_event(total),
        "faust_noop_events_per_s": round(noop.rate), "faust_noop_vs_bare": round(noop.rate / bare, 4),
        "reread_vs_faust_noop": round(reread.rate / noop.rate, 3) if noop.rate else None,
        "worker_peak_rss_mb": max(backlog.rss_mb, reread.rss_mb), "target_rss_mb": 300,
        "worker_wall_s": round(backlog.wall_s, 1), "worker_first_commit_s": round(backlog.first_commit_s, 1),
        "cpu_seconds_while_worker_ran": backlog.cpu,
        "cpu_seconds_while_reread_ran": reread.cpu,
        "cpu_seconds_while_faust_noop_ran": noop.cpu,
        "model_calls": model_calls, "load_s": round(load_s, 1), "logs": str(logs),
    }


def main() -> None:
    users = int(os.environ.get("BENCH_WORKER_USERS", "10000"))
    per_user = int(os.environ.get("BENCH_WORKER_EVENTS_PER_USER", "10"))
    report("worker", run(users, per_user))
