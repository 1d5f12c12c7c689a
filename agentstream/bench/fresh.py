"""One phase of `agentstream bench pipeline` on a stack of its own: fresh tables and topics (of
the same size every time: the demo businesses only), the bridge, worker and gateway as
processes, and what they spent over a window: CPU per process (with Kafka, ministack and this
process) and the counters each process serves on /metrics (DynamoDB calls, append conflicts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.tables import table_specs
from agentstream.bench.common import CpuMeter, isolated_env, own_ddb_calls, settings_for
from agentstream.local.services import Process, free_port
from agentstream.settings import Settings
from agentstream.stack import DEMO_BUSINESSES, spawn_component, wait_http

OURS = ("gateway", "bridge", "worker")  # the gateway delivers the widget's replies itself


@dataclass
class Spent:
    """What a window cost: CPU seconds per process, and per process of ours its counted
    DynamoDB calls (`dynamodb`), DynamoDB Streams calls (`streams`) and `append_conflicts`;
    `load_calls`: this process's own DynamoDB calls (the load's inbound appends, if any)."""

    cpu: dict[str, float]
    counts: dict[str, dict[str, float]] = field(default_factory=dict)
    load_calls: float = 0.0

    def total(self, counter: str) -> float:
        return sum(c.get(counter, 0.0) for c in self.counts.values())


@dataclass
class Stack:
    settings: Settings
    port: int
    procs: dict[str, Process]
    metrics_urls: dict[str, str]
    meter: CpuMeter
    api_keys: dict[str, str]  # REST API key by business

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read(self) -> Spent:
        return Spent(self.meter.read(), {name: scrape(url) for name, url in self.metrics_urls.items()}, own_ddb_calls())

    def since(self, before: Spent) -> Spent:
        now = self.read()
        counts = {name: {k: v - before.counts[name].get(k, 0.0) for k, v in c.items()} for name, c in now.counts.items()}
        return Spent({name: now.cpu[name] - before.cpu[name] for name in before.cpu}, counts,
                     now.load_calls - before.load_calls)


def scrape(url: str) -> dict[str, float]:
    """A process's DynamoDB calls (by service) and append conflicts so far, from its /metrics."""
    counts = {"dynamodb": 0.0, "streams": 0.0, "append_conflicts": 0.0}
    text = httpx.get(url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "agentstream_dynamodb_calls_total":
                service = "streams" if sample.labels["service"] == "dynamodbstreams" else "dynamodb"
                _add(counts, service, sample.labels["operation"], sample.value)
            elif sample.name == "agentstream_append_conflicts_total":
                _add(counts, "append_conflicts", sample.labels["type"], sample.value)
    return counts


def _add(counts: dict[str, float], counter: str, label: str, value: float) -> None:
    """`value` to `counter` and to its `counter.label` share."""
    counts[counter] += value
    key = f"{counter}.{label}"
    counts[key] = counts.get(key, 0.0) + value


def labelled(counts: dict[str, float], counter: str) -> dict[str, float]:
    """`counter`'s shares by label, from `scrape`'s counts (or a sum of them)."""
    prefix = f"{counter}."
    return {key[len(prefix):]: value for key, value in sorted(counts.items()) if key.startswith(prefix)}


def fresh_env(base: dict[str, str], **extra: str) -> tuple[dict[str, str], Settings, dict[str, str]]:
    """New table and topic names, the tables created and filled with the demo businesses; with
    the demo businesses' REST API keys."""
    env = isolated_env(base, **extra)
    s = settings_for(env)
    asyncio.run(setup(s))
    asyncio.run(populate(s))
    return env, s, asyncio.run(demo_credentials(s, DEMO_BUSINESSES))


async def drop_tables(s: Settings) -> None:
    """A finished phase's tables go, so the next phase's server holds no more than it did."""
    async with dynamodb_client(s) as ddb:
        for spec in table_specs(s.tables):
            try:
                await ddb.delete_table(TableName=spec.name)
            except Exception:  # already gone: nothing to free
                pass


@contextmanager
def fresh_stack(base: dict[str, str], service_pids: dict[str, int], model_url: str, logs: Path,
                **extra: str) -> Iterator[Stack]:
    """The bridge, worker and gateway (logs in `logs`) on fresh tables and topics (`extra`
    settings on top); their tables dropped after."""
    port, metrics = free_port(), {"bridge": free_port(), "worker": free_port(), "gateway": free_port()}
    env, s, api_keys = fresh_env(base, OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=model_url,
                       GATEWAY_PORT_HTTP=str(port), KAFKA_PARTITIONS="6", **extra)
    logs.mkdir(parents=True, exist_ok=True)
    procs = {name: spawn_component(name, env | {"METRICS_PORT": str(metrics.get(name, 0))}, logs) for name in OURS}
    urls = {n: f"http://127.0.0.1:{p}/metrics" for n, p in metrics.items()}
    meter = CpuMeter(service_pids | {name: proc.popen.pid for name, proc in procs.items()}, own="load_and_model")
    try:
        wait_http(port, 60)
        for name in ("bridge", "worker"):
            wait_http(metrics[name], 60)
        time.sleep(3.0)
        yield Stack(s, port, procs, urls, meter, api_keys)
    finally:
        for proc in procs.values():
            proc.stop()
        asyncio.run(drop_tables(s))


def per_unit(spent: Spent, units: int) -> dict[str, Any]:
    """A window's figures per turn (or message): CPU ms per process and in total, our processes'
    over ministack's, DynamoDB calls (counted) and append conflicts."""
    n = max(units, 1)
    cpu = {name: seconds * 1000 / n for name, seconds in spent.cpu.items()}
    ours = sum(cpu.get(name, 0.0) for name in OURS)
    return {
        "cpu_ms": {name: round(ms, 1) for name, ms in cpu.items()} | {"total": round(sum(cpu.values()), 1)},
        "ours_cpu_ms": round(ours, 2),
        "ours_over_ministack_cpu": round(ours / cpu["ministack"], 3) if cpu.get("ministack") else None,
        "ddb_calls": round(spent.total("dynamodb") / n, 2),
        "ddb_calls_by_process": {name: round(c["dynamodb"] / n, 2) for name, c in spent.counts.items()},
        "load_ddb_calls": round(spent.load_calls / n, 2),
        "streams_calls": round(spent.total("streams") / n, 2),
        "append_conflicts": round(spent.total("append_conflicts") / n, 3),
        "append_conflicts_by_process": {name: round(c["append_conflicts"] / n, 3) for name, c in spent.counts.items()},
        "append_conflicts_by_type": _by_type(spent, n),
    }


def _by_type(spent: Spent, n: int) -> dict[str, float]:
    """Append conflicts per unit by the type of the event that lost the race."""
    totals: dict[str, float] = {}
    for counts in spent.counts.values():
        for kind, value in labelled(counts, "append_conflicts").items():
            totals[kind] = totals.get(kind, 0.0) + value
    return {kind: round(value / n, 3) for kind, value in sorted(totals.items()) if value}
