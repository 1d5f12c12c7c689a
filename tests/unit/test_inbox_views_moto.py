"""The inbox's view state on moto's DynamoDB (fast tier): what `forget` finds of a customer's
sessions is every reader's item of those sessions and nothing of another session."""

from __future__ import annotations

from typing import Any

from agentstream.adapters.dynamo.inbox_views import InboxViews
from agentstream.settings import Settings


async def test_of_sessions_finds_every_readers_item_of_those_sessions_only(moto_ddb: Any, moto_settings: Settings,
                                                                           biz: str) -> None:
    views = InboxViews(moto_ddb, moto_settings.tables.inbox_views)
    for session in ("s1", "s10", "s2"):  # s10 starts like s1: only s1's own items are s1's
        for reader in ("Maria", "Ion"):
            await views.opened(biz, session, reader, 3)
    await views.opened("another-business", "s1", "Maria", 3)

    found = await views.of_sessions(biz, ["s1", "s2", "s1"])
    assert sorted(k["viewKey"] for k in found) == ["s1#Ion", "s1#Maria", "s2#Ion", "s2#Maria"]
    assert {k["businessId"] for k in found} == {biz} and all(set(k) == {"businessId", "viewKey"} for k in found)
    assert await views.of_sessions(biz, []) == []
