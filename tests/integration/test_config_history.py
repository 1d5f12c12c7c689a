"""Business data kept with its history (issue 14): each version with the time it came into
force, and a replay after a settings change folds each event with the settings of its time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.config_history import ConfigHistory, info_key, version_of
from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.adapters.dynamo.projection_store import sessions_of_user
from agentstream.streams.replay import Scope
from agentstream.wiring import new_replayer
from tests.integration.world import World, drain, inbound

JAN = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def test_versions_are_kept_with_the_time_they_came_into_force(world: World) -> None:
    history = ConfigHistory(world.ddb, world.settings.tables.config_history)
    key = info_key("b-history")
    assert await history.record(key, {"hours": "9-17"}, JAN) == version_of({"hours": "9-17"})
    await history.record(key, {"hours": "9-17"}, JAN + timedelta(days=1))  # the same content: no new version
    await history.record(key, {"hours": "8-20"}, JAN + timedelta(days=10))
    assert [(at[:10], content) for at, content, _ in await history.versions(key)] == [
        ("2026-01-01", {"hours": "9-17"}), ("2026-01-11", {"hours": "8-20"})]
    assert (await history.at(key, JAN + timedelta(days=5)))[0] == {"hours": "9-17"}
    assert (await history.at(key, JAN + timedelta(days=30)))[0] == {"hours": "8-20"}
    assert await history.at(key, JAN - timedelta(days=1)) is None


async def test_a_replay_after_the_idle_timeout_changed_reproduces_the_past(world: World) -> None:
    for minutes, text in ((0, "Bună ziua"), (90, "Mai sunteți acolo?")):  # 90 min apart: two sessions at 60
        await world.store.append(inbound("idle", text, minutes))
    await drain(world, "demo-salon#idle")
    assert len(await sessions_of_user(world.ddb, world.settings.tables, "demo-salon", "idle")) == 2

    table, key = world.settings.tables.business_info, to_item({"businessId": "demo-salon"})
    info = from_item((await world.ddb.get_item(TableName=table, Key=key))["Item"])
    info["settings"] = {**info.get("settings", {}), "sessionIdleMinutes": 120}
    await world.ddb.put_item(TableName=table, Item=to_item(info))
    assert (await BusinessDirectory(world.ddb, world.settings.tables).info("demo-salon"))["settings"]["sessionIdleMinutes"] == 120

    report = await new_replayer(world.ddb, world.settings).run(Scope("demo-salon", "idle"), verify=True)
    assert report.events == 4 and report.differences == []  # folded with the 60 minutes in force then
