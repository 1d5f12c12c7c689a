"""put_log_items: a bulk write never writes a stream's seq n before its seq n-1 is written."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings, strategies as st

from agentstream.adapters.dynamo.client import from_item, put_log_items


@dataclass
class Call:
    started: int
    finished: int
    keys: list[tuple[str, int]]


@dataclass
class RecordingDdb:
    """batch_write_item that records each call's (streamId, seq) keys and when it started and
    finished (a logical clock), sleeping a random tiny while so that calls overlap."""

    rng: random.Random
    calls: list[Call] = field(default_factory=list)
    clock: itertools.count[int] = field(default_factory=itertools.count)
    running: int = 0
    most_at_once: int = 0

    async def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        started = next(self.clock)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(self.rng.random() / 2000)
        self.running -= 1
        keys = [(i["streamId"], i["seq"]) for reqs in RequestItems.values()
                for i in (from_item(r["PutRequest"]["Item"]) for r in reqs)]
        self.calls.append(Call(started, next(self.clock), keys))
        return {}


def log_items(lengths: list[int], rng: random.Random) -> list[dict[str, Any]]:
    """Stream i's seqs 1..lengths[i], shuffled."""
    items = [{"streamId": f"b1#u{i}", "seq": seq, "text": "x"} for i, n in enumerate(lengths) for seq in range(1, n + 1)]
    rng.shuffle(items)
    return items


async def write(lengths: list[int], rng: random.Random) -> RecordingDdb:
    ddb = RecordingDdb(rng)
    await put_log_items(ddb, "events", log_items(lengths, rng))
    return ddb


# Up to 70 streams: a wave of more than 25 items takes several concurrent BatchWriteItem calls.
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), max_size=70), st.randoms(use_true_random=False))
async def test_each_seq_is_written_after_the_one_before_it_finished(lengths: list[int], rng: random.Random) -> None:
    ddb = await write(lengths, rng)
    call_of = {key: call for call in ddb.calls for key in call.keys}
    written = [key for call in ddb.calls for key in call.keys]
    assert sorted(written) == sorted((f"b1#u{i}", s) for i, n in enumerate(lengths) for s in range(1, n + 1))
    for (stream, seq), call in call_of.items():
        if seq > 1:
            assert call.started > call_of[(stream, seq - 1)].finished, (stream, seq)


async def test_the_fake_lets_calls_overlap() -> None:
    """Else the property above would hold for any order of writes."""
    ddb = await write([2] * 200, random.Random(1))
    assert ddb.most_at_once > 1
