"""The operator's commands as a person runs them: replay (with its progress bar, --verify and
--source kafka), forget and reconcile, against the real local server and broker."""

from __future__ import annotations

import subprocess
import sys

from agentstream.adapters.kafka.client import ensure_topics
from tests.integration.world import World, drain, inbound
from tests.integration.test_replay_kafka import publish


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command; its `stdout` holds everything it printed (progress, figures, differences)."""
    return subprocess.run([sys.executable, "-m", "agentstream.cli", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


async def test_replay_verify_forget_and_reconcile_from_the_command_line(world: World) -> None:
    await ensure_topics(world.settings, partitions=3)
    for user in ("c1", "c2"):
        for i in range(2):
            await world.store.append(inbound(user, f"salut {i}", i))
        await drain(world, f"demo-salon#{user}")

    clean = cli("replay", "--business", "demo-salon", "--verify")
    assert clean.returncode == 0 and "no differences" in clean.stdout, clean.stdout
    assert "streams: 2; events folded: 8" in clean.stdout and "replay from table" in clean.stdout

    await world.ddb.delete_item(TableName=world.settings.tables.rag_user,
                                Key={"businessId": {"S": "demo-salon"}, "userId": {"S": "c2"}})
    broken = cli("replay", "--business", "demo-salon", "--verify")
    assert broken.returncode == 1 and "missing in the live table" in broken.stdout and "1 differences" in broken.stdout

    await publish(world, ["demo-salon#c1", "demo-salon#c2"], skip=set())
    rebuilt = cli("replay", "--business", "demo-salon", "--source", "kafka")
    assert rebuilt.returncode == 0 and "streams: 2; events folded: 8" in rebuilt.stdout, rebuilt.stdout
    assert cli("replay", "--business", "demo-salon", "--verify").returncode == 0

    erased = cli("forget", "--business", "demo-salon", "--user", "c1")
    assert erased.returncode == 0 and "events 4" in erased.stdout and "still in Kafka" in erased.stdout
    after = cli("replay", "--business", "demo-salon", "--source", "kafka", "--verify")
    assert after.returncode == 0 and "streams: 2; events folded: 4" in after.stdout, after.stdout

    reconciled = cli("reconcile", "--business", "demo-salon")
    assert reconciled.returncode == 0 and "streams checked: 1; behind: 0" in reconciled.stdout, reconciled.stdout
    assert cli("replay", "--user", "c2").returncode != 0, "--user needs --business"
