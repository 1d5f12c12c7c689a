"""`agentstream bench replay`: 100 000 events from 10 000 users. The replay rate (read, fold,
write the projections) against the raw read rate of the same source (the same per-stream
queries, nothing else) in the same run, and the peak RSS of the replaying process. For both
phases: the wall time and the CPU seconds spent by this process and by the local DynamoDB server
(when the run started its own), which show which of the two bounds the rate."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from agentstream.bootstrap import populate
from agentstream.adapters.dynamo.client import dynamodb_client, put_log_items
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.bench.common import CpuMeter, isolated_env, report, services, settings_for
from agentstream.events import new_event, reply_event_id
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
TEXTS = ["Bună ziua, aș vrea o programare la tuns", "Cât costă vopsitul?", "Mâine la 10 se poate?", "Mulțumesc!"]


def _events(user: int, count: int) -> list[dict[str, Any]]:
    items, inbound = [], None
    for seq in range(1, count + 1):
        at = T0 + timedelta(minutes=seq * 7 + user % 50)
        if seq % 2:
            event = new_event("MessageReceived", business_id="demo-salon", user_id=f"u{user}", channel="whatsapp",
                              payload={"content": TEXTS[seq % len(TEXTS)]}, occurred_at=at)
            inbound = event
        else:
            event = new_event("ReplyGenerated", business_id="demo-salon", user_id=f"u{user}", channel="whatsapp",
                              event_id=reply_event_id(inbound.eventId), occurred_at=at,
                              payload={"content": "Sigur, vă așteptăm!", "inReplyTo": inbound.eventId, "sessionId": "", "model": "m"})
        items.append(event.with_seq(seq).to_json_dict())
    return items


async def _load(ddb: Any, table: str, users: int, per_user: int) -> None:
    for first in range(0, users, 500):  # a slice of users at a time keeps the loader's memory small
        await put_log_items(ddb, table, [item for u in range(first, min(users, first + 500)) for item in _events(u, per_user)])


async def _raw_read(ddb: Any, table: str, streams: list[str], concurrency: int = 16) -> float:
    store, sem, count = EventStore(ddb, table), asyncio.Semaphore(concurrency), 0

    async def read(stream: str) -> None:
        nonlocal count
        async with sem:
            events = await store.read(stream)
        count += len(events)

    start = time.perf_counter()
    await asyncio.gather(*(read(s) for s in streams))
    return count / (time.perf_counter() - start)


async def run(users: int = 10_000, per_user: int = 10) -> dict[str, Any]:
    pids: dict[str, int] = {}
    with services(pids) as base:
        s = settings_for(isolated_env(base))
        async with dynamodb_client(s) as ddb:
            await ensure_tables(ddb, s.tables)
            await populate(s)
            started = time.perf_counter()
            await _load(ddb, s.tables.events, users, per_user)
            load_s = time.perf_counter() - started
            streams = [f"demo-salon#u{u}" for u in range(users)]
            with _phase(pids) as raw_phase:
                raw = await _raw_read(ddb, s.tables.events, streams)
            replayer = new_replayer(ddb, s, fresh=True)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            with _phase(pids) as replay_phase:
                result = await replayer.run(Scope("demo-salon"))
            replay_rate = result.events / replay_phase["wall_s"]
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "events": result.events, "users": users, "replay_events_per_s": round(replay_rate),
        "raw_read_events_per_s": round(raw), "replay_vs_raw": round(replay_rate / raw, 3), "target_vs_raw": 0.5,
        "peak_rss_mb": round(rss, 1), "rss_before_replay_mb": round(rss_before, 1), "load_s": round(load_s, 1),
        "raw_seconds": _rounded(raw_phase), "replay_seconds": _rounded(replay_phase),
    }


@contextmanager
def _phase(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """Wall time and the CPU seconds of this process and of the local DynamoDB server (if this
    run started it) over the block; the figures fill the yielded dict when the block ends."""
    figures: dict[str, float] = {}
    meter = CpuMeter({name: pid for name, pid in pids.items() if name == "ministack"}, own="ours")
    before, start = meter.read(), time.perf_counter()
    yield figures
    figures["wall_s"] = time.perf_counter() - start
    figures.update(meter.since(before))


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 2) for name, value in figures.items()}


def main() -> None:
    report("replay", asyncio.run(run()))
