"""Bridge processes on the real local server and broker: crashes (kill -9), two bridges sharing
the stream, and a take-over when the lease holder dies."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from agentstream.bootstrap import setup
from agentstream.adapters.dynamo.client import dynamodb_client, put_log_items
from agentstream.events import new_event
from agentstream.settings import Settings
from agentstream.stack import spawn_component
from agentstream.wiring import lease_table
from tests.sizes import size

pytestmark = pytest.mark.soak  # processes killed and raced: `make soak` runs each 20 times in a row


async def write_events(settings: Settings, streams: int, per_stream: int, first_seq: int = 1) -> None:
    """Events seq first_seq..first_seq+per_stream-1 on each of `streams` streams, each stream in order."""
    items = [
        new_event("MessageReceived", business_id="b", user_id=f"u{s}", channel="sms",
                  payload={"content": f"message {q}"}).with_seq(q).to_json_dict()
        for q in range(first_seq, first_seq + per_stream) for s in range(streams)
    ]
    async with dynamodb_client(settings) as ddb:
        await put_log_items(ddb, settings.tables.events, items)


class TopicReader:
    """Reads a topic from its beginning, keeping (streamId, seq) of every record in arrival order."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = AIOKafkaConsumer(settings.topic_events, bootstrap_servers=settings.kafka_bootstrap_servers,
                                          group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        self.records: list[tuple[int, str, int]] = []

    async def __aenter__(self) -> "TopicReader":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    def unique(self) -> int:
        return len({(stream, seq) for _, stream, seq in self.records})

    async def until(self, condition: Any, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            for batch in (await self._consumer.getmany(timeout_ms=200)).values():
                for r in batch:
                    event = json.loads(r.value)
                    assert r.key.decode() == event["streamId"]
                    self.records.append((r.partition, event["streamId"], event["seq"]))
        assert condition(), f"timed out with {len(self.records)} records, {self.unique()} distinct"

    def per_stream_after_dedupe(self) -> dict[str, list[int]]:
        """Each stream's seqs in partition order, dropping any seq at or below one already seen."""
        seen: dict[str, list[int]] = defaultdict(list)
        for _, stream, seq in self.records:
            if not seen[stream] or seq > seen[stream][-1]:
                seen[stream].append(seq)
        return seen


async def owners(settings: Settings) -> set[str | None]:
    async with dynamodb_client(settings) as ddb:
        return {lease.owner for lease in (await lease_table(ddb, settings.tables.leases, "probe").all()).values()}


async def test_kill_9_in_the_middle_of_thousands_of_events_loses_nothing(settings: Settings, env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    """5 000 events (10 000 under `make soak`), the bridge killed once half of them are on the
    topic: more than the two batches (2 000) a restart may send again, so a restart from the
    beginning would fail the duplicates bound."""
    streams, per_stream = size(100, 200), 50
    total = streams * per_stream
    await setup(settings, partitions=3)
    await write_events(settings, streams, per_stream)
    async with TopicReader(settings) as topic:
        bridge = spawn_component("bridge", env, tmp_path)
        try:
            await topic.until(lambda: len(topic.records) >= total // 2)
            bridge.kill()
            killed_at = len(topic.records)
            bridge = spawn_component("bridge", env, tmp_path)
            await topic.until(lambda: topic.unique() == total)
        finally:
            bridge.stop()
    assert killed_at < total, "the kill came before the end"
    in_partitions = {(stream, partition) for partition, stream, _ in topic.records}
    assert len(in_partitions) == streams, "each stream stays in one partition"
    ordered = topic.per_stream_after_dedupe()
    assert len(ordered) == streams and all(seqs == list(range(1, per_stream + 1)) for seqs in ordered.values())
    duplicates = len(topic.records) - total
    assert duplicates <= 2 * 1000, f"only the last uncheckpointed batches are sent again, got {duplicates}"
    assert all(count <= 2 for count in Counter((s, q) for _, s, q in topic.records).values())


async def test_two_bridges_share_the_stream_and_the_survivor_takes_over(settings: Settings, env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    env = env | {"BRIDGE_LEASE_TTL_MS": "2000"}
    await setup(settings, partitions=3)
    await write_events(settings, 20, 5)
    async with TopicReader(settings) as topic:
        one = spawn_component("bridge", env, tmp_path / "one")
        two = spawn_component("bridge", env, tmp_path / "two")
        try:
            await topic.until(lambda: topic.unique() == 100)
            (holder,) = await owners(settings)
            assert holder is not None, "the single shard is held by exactly one bridge"
            processes = {"one": one, "two": two}
            logs = {name: (tmp_path / name / "bridge.log").read_text() for name in processes}
            dead = next(name for name, text in logs.items() if holder in text)
            survivor = "two" if dead == "one" else "one"
            processes[dead].kill()
            await write_events(settings, 20, 5, first_seq=6)
            await topic.until(lambda: topic.unique() == 200, timeout=60)
            (new_holder,) = await owners(settings)
            assert new_holder not in (None, holder)
            assert new_holder in (tmp_path / survivor / "bridge.log").read_text()
        finally:
            one.stop()
            two.stop()
    ordered = topic.per_stream_after_dedupe()
    assert all(seqs == list(range(1, 11)) for seqs in ordered.values())
