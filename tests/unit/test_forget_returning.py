"""A customer erased by `forget` who writes again starts a new conversation at seq 1: the worker
that had them cached answers, and nothing of the erased conversation comes back."""

from __future__ import annotations

import uuid
from typing import Any

from agentstream.events import utc_now
from agentstream.settings import Settings
from agentstream.streams.forget import forget
from agentstream.wiring import forget_stores
from tests.unit.test_dead_letters import T0, Worker


async def test_a_customer_who_writes_again_after_forget_is_answered_as_new(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")
    await worker.say("Bună ziua, sunt Ana Popescu", 0)
    await worker.say("Aveți loc mâine la 10?", 1)
    await worker.drain()
    assert len(await worker.replies_to()) == 2
    await forget(forget_stores(moto_ddb, moto_settings), moto_settings, biz, worker.user)

    now = (utc_now() - T0).total_seconds() / 60  # the gateway stamps the time it takes a message
    again = await worker.say("Bună, o întrebare", now + 1)
    await worker.drain()  # the same worker process: its cache held the erased conversation
    assert again.seq == 1 and await worker.replies_to() == [again.eventId]
    memory = await worker.memory()
    assert "Ana" not in str(memory) and "mâine" not in str(memory), "nothing of the erased conversation"
    assert await worker.verify() == []
