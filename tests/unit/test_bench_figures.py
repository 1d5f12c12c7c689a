"""The pipeline benchmark's split of each reply's latency into hops, and its choice of the pair
of head-of-line and direct-flow runs it reports."""

from __future__ import annotations

import pytest

from agentstream.bench import load
from agentstream.bench.pipeline import median_pair


def test_hops_split_each_reply_at_its_timestamps() -> None:
    """ack 0 → events topic +20 ms → reply written +30 → replies topic +5 → frame +45 (and one
    message the topics never saw, which is left out)."""
    answered = {"a": (100.0, 100.1), "b": (200.0, 200.1), "lost": (300.0, 300.5)}
    inbound = {"a": 100.02, "b": 200.02}
    replies = {"a": (100.05, 100.055), "b": (200.05, 200.055)}
    assert load.hops(answered, inbound, replies) == pytest.approx(
        {"hop_bridge_p50_ms": 20.0, "hop_worker_p50_ms": 30.0, "hop_reply_publish_p50_ms": 5.0, "hop_delivery_p50_ms": 45.0},
        abs=0.01)


def test_the_pair_with_the_median_ratio_is_reported() -> None:
    runs = [(1.58, "second run", "b"), (1.35, "first run", "a"), (1.47, "third run", "c")]
    assert median_pair(runs) == (1.47, "third run", "c")
    assert median_pair(runs[:2]) == (1.58, "second run", "b"), "of two, the higher: never flatters"
    assert median_pair(runs[:1]) == runs[0]
