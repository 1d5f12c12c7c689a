"""The seed's test script (`scripts/test_sessions_and_messages.py`) against the real local server."""

from __future__ import annotations

import subprocess
import sys

from agentstream.bootstrap import populate, setup
from agentstream.adapters.dynamo.client import dynamodb_client, scan_all
from agentstream.adapters.dynamo.tables import SESSIONS_GSI, ensure_tables, has_index
from agentstream.settings import Settings
from agentstream.wiring import selfcheck_on
from tests.integration.test_setup import create_sessions_table_without_gsi
from tests.services import ROOT


async def test_the_check_passes_and_leaves_no_customer_behind(settings: Settings) -> None:
    await setup(settings, with_topics=False)
    await populate(settings)
    async with dynamodb_client(settings) as ddb:
        checks = await selfcheck_on(ddb, settings)
        assert [c.ok for c in checks] == [True] * 4, checks
        assert await scan_all(ddb, TableName=settings.tables.sessions) == []
        assert await scan_all(ddb, TableName=settings.tables.messages) == []


async def test_the_check_passes_on_a_sessions_table_without_its_gsi(settings: Settings) -> None:
    """The seed's fallback: no businessId-userId-index, so the active session is found by a scan."""
    async with dynamodb_client(settings) as ddb:
        await create_sessions_table_without_gsi(ddb, settings)
        await ensure_tables(ddb, settings.tables, only=[t for t in settings.tables.model_dump().values()
                                                        if t != settings.tables.sessions])
        await populate(settings)
        assert not await has_index(ddb, settings.tables.sessions, SESSIONS_GSI)
        checks = await selfcheck_on(ddb, settings)
        assert [c.ok for c in checks] == [True] * 4, checks


def test_the_script_prints_each_check_and_exits_zero(env: dict[str, str], settings: Settings) -> None:
    from tests.e2e.stack import run_sync

    run_sync(setup(settings, with_topics=False))
    run_sync(populate(settings))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "test_sessions_and_messages.py"), "demo-restaurant"],
                          env=env | {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("ok") for line in lines), done.stdout
