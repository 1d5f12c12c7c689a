"""The usage table's item as a side item of an append, on the in-memory stores, moto and
ministack alike (the fixtures of test_store_contract): the ADD goes in with the event or not at
all, a duplicate adds nothing, the total of concurrent appends is exact, and a replay's SET wins."""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.dynamo.usage import UsageStore
from agentstream.adapters.memory_stores import MemoryEventStore
from agentstream.adapters.memory_usage import MemoryUsage
from agentstream.streams.ports import AddTo
from tests.unit.test_store_contract import Stores, message, ministack_ddb, stores  # noqa: F401  (fixtures)


def ledger(stores: Stores) -> Any:
    log = stores.log
    if isinstance(log, MemoryEventStore):
        return MemoryUsage(log.tables)
    return UsageStore(log._ddb, log._table.replace("ai-agent-events", "ai-agent-usage"), log._table)  # noqa: SLF001


async def test_the_month_s_spend_is_added_with_each_append_exactly(stores: Stores, biz: str) -> None:
    usage = ledger(stores)
    table, key = usage.location(biz, "2026-12")

    def spend(n: int) -> list[AddTo]:
        return [AddTo("usage:2026-12", "spendMicros", n, table=table, key=key)]

    await asyncio.gather(*(stores.log.append_with(message(biz, str(i), user=f"u{i}"), spend(10 + i), external_id=f"r{i}")
                           for i in range(8)))
    assert await usage.spent(biz, "2026-12") == sum(10 + i for i in range(8))
    again = await stores.log.append_with(message(biz, "0", user="u0"), spend(10), external_id="r0")
    assert again.duplicate and await usage.spent(biz, "2026-12") == 108, "a duplicate adds nothing"
    assert await usage.mark(biz, "2026-12", "spentAt", "t") and not await usage.mark(biz, "2026-12", "spentAt", "t2")
    await usage.set_spent(biz, "2026-12", 5)
    assert await usage.spent(biz, "2026-12") == 5 and await usage.spent(biz, "2027-01") == 0
    assert await usage.add_once(biz, "2026-12", 7, "draft") and not await usage.add_once(biz, "2026-12", 7, "draft")
    assert await usage.spent(biz, "2026-12") == 12
