"""Analytics snapshots are signed JSON: the state round-trips, nothing but JSON is ever loaded,
a changed blob or another key is refused, an older secret key still verifies, and a process
that signs does not start without the secret key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo.snapshots import SnapshotStore
from agentstream.keys import KeyRing
from agentstream.projections.analytics import BusinessStats, Limits, state_of, stats_from
from agentstream.settings import Settings
from tests.unit.test_analytics import sample_log

AGENTSTREAM = str(Path(sys.executable).with_name("agentstream"))


def folded() -> BusinessStats:
    stats = BusinessStats("b", Limits(latencies=3))
    for event in sample_log()[:-2]:  # with replies still waiting for nothing, sessions open
        stats.apply(event)
    return stats


def test_a_state_read_back_gives_the_same_figures_and_counts_nothing_twice() -> None:
    stats, log = folded(), sample_log()
    again = stats_from(state_of(stats))
    assert again.snapshot() == stats.snapshot() and again.limits == stats.limits
    assert not any(again.apply(e) for e in log[:-2])  # already counted: duplicates
    for e in log[-2:]:
        assert again.apply(e) == stats.apply(e)
    assert again.snapshot() == stats.snapshot()


async def test_the_store_saves_json_and_refuses_a_changed_blob_or_another_key(moto_ddb: Any, moto_settings: Settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    table = moto_settings.tables.analytics_snapshots
    state = [state_of(folded())]
    await SnapshotStore(moto_ddb, table, KeyRing((old,))).save("n", state, {"0": 7}, "v1")

    rotated = await SnapshotStore(moto_ddb, table, KeyRing((new, old))).load("n")  # the old key still verifies
    assert rotated is not None and rotated.state == state and rotated.offsets == {"0": 7}
    assert await SnapshotStore(moto_ddb, table, KeyRing((new,))).load("n") is None

    head = (await moto_ddb.get_item(TableName=table, Key={"snapshotKey": {"S": "n"}, "part": {"N": "0"}}))["Item"]
    chunk_key = {"snapshotKey": {"S": f"n#{head['snapshotId']['S']}"}, "part": {"N": "0"}}
    await moto_ddb.update_item(TableName=table, Key=chunk_key, UpdateExpression="SET #d = :d",
                               ExpressionAttributeNames={"#d": "data"}, ExpressionAttributeValues={":d": {"B": b"x"}})
    assert await SnapshotStore(moto_ddb, table, KeyRing((old,))).load("n") is None


async def test_a_pickled_snapshot_of_an_earlier_build_is_never_loaded(moto_ddb: Any, moto_settings: Settings) -> None:
    table, key = moto_settings.tables.analytics_snapshots, Fernet.generate_key().decode()
    store = SnapshotStore(moto_ddb, table, KeyRing((key,)))
    await store.save("p", [], {}, "v1")
    await moto_ddb.update_item(TableName=table, Key={"snapshotKey": {"S": "p"}, "part": {"N": "0"}},
                               UpdateExpression="REMOVE #f", ExpressionAttributeNames={"#f": "format"})
    assert await store.load("p") is None


@pytest.mark.parametrize("command", ["analytics", "gateway", "delivery"])
def test_a_process_that_signs_does_not_start_without_the_secret_key(command: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AGENTSTREAM_ENV_FILE": "none"}
    done = subprocess.run([AGENTSTREAM, command], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("agentstream: AGENTSTREAM_SECRET_KEY is not set")
