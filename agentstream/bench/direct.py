"""The direct flow: what a user would otherwise build, the seed's own request/response design,
as the baseline of `agentstream bench pipeline`'s `ours_over_direct_cpu`.

Per message: find the customer's active session by the sessions' GSI (a new session on the
first message), save the user message, update the session, read the last 4 messages, read the
business info, system instructions and RAG (cached per business), wait for the model (a sleep:
no model is called), update rag-dynamic-user, save the agent message. With the client of our
processes' hot path (`hot_dynamodb_client`: the lean client, or aiobotocore with
DYNAMODB_CLIENT=botocore; both count their calls), in a process of its own on fresh tables, `conversations` customers at once, each sending `turns` messages
one after the other.

`agentstream bench direct` runs it alone (BENCH_DIRECT_CONVERSATIONS, BENCH_DIRECT_TURNS).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from agentstream import loops
from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.adapters.dynamo.lean_client import hot_dynamodb_client
from agentstream.adapters.dynamo.tables import MESSAGES_BY_SESSION, SESSIONS_GSI
from agentstream.bench.common import CpuMeter, own_ddb_calls, report, services
from agentstream.events import iso, utc_now
from agentstream.settings import Settings, Tables

BUSINESS = "demo-restaurant"


class DirectFlow:
    """The seed's per-message calls against one business's tables."""

    def __init__(self, ddb: Any, tables: Tables) -> None:
        self._ddb = ddb
        self._t = tables
        self._business: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def turn(self, user: str, text: str, model_s: float) -> None:
        now = iso(utc_now())
        session = await self._active_session(user) or await self._new_session(user, now)
        await self._save_message(session, user, text, "user", now)
        await self._ddb.update_item(TableName=self._t.sessions, Key=to_item({"sessionId": session}),
                                    UpdateExpression="SET lastMessageAt = :t, updatedAt = :t",
                                    ExpressionAttributeValues=to_item({":t": now}))
        recent = await self._last_messages(session, 4)
        business = await self.business(BUSINESS)
        prompt = "\n".join([json.dumps(business, sort_keys=True, default=str), *(m["content"] for m in reversed(recent))])
        await asyncio.sleep(model_s)
        answer = f"answer to {text} ({len(prompt)} characters of context)"
        await self._remember_user(user, text, len(recent))
        await self._save_message(session, user, answer, "agent", iso(utc_now()))

    async def business(self, business_id: str) -> dict[str, Any]:
        """Business info, its type's system instructions and its RAG entries, read once (the
        customers asking at the same time wait for the one read)."""
        if business_id not in self._business:
            self._business[business_id] = asyncio.ensure_future(self._read_business(business_id))
        return await asyncio.shield(self._business[business_id])

    async def _read_business(self, business_id: str) -> dict[str, Any]:
        info = from_item((await self._ddb.get_item(TableName=self._t.business_info,
                                                   Key=to_item({"businessId": business_id})))["Item"])
        kind = str(info.get("businessType", "general"))
        instructions = await self._query(TableName=self._t.rag_system, KeyConditionExpression="businessType = :k",
                                         ExpressionAttributeValues=to_item({":k": kind}))
        rag = await self._query(TableName=self._t.rag_business, KeyConditionExpression="businessId = :b",
                                ExpressionAttributeValues=to_item({":b": business_id}))
        return {"info": info, "instructions": instructions, "rag": rag}

    async def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        return [from_item(i) for i in (await self._ddb.query(**kwargs)).get("Items", [])]

    async def _active_session(self, user: str) -> str | None:
        found = await self._query(TableName=self._t.sessions, IndexName=SESSIONS_GSI,
                                  KeyConditionExpression="businessId = :b AND userId = :u",
                                  FilterExpression="#s = :a", ExpressionAttributeNames={"#s": "status"},
                                  ExpressionAttributeValues=to_item({":b": BUSINESS, ":u": user, ":a": "active"}))
        return str(found[0]["sessionId"]) if found else None

    async def _new_session(self, user: str, now: str) -> str:
        session = str(uuid.uuid4())
        await self._ddb.put_item(TableName=self._t.sessions, Item=to_item({
            "sessionId": session, "businessId": BUSINESS, "locationId": "default", "userId": user, "status": "active",
            "createdAt": now, "updatedAt": now, "lastMessageAt": now, "metadata": {"businessType": "restaurant"}}))
        return session

    async def _save_message(self, session: str, user: str, content: str, kind: str, at: str) -> None:
        await self._ddb.put_item(TableName=self._t.messages, Item=to_item({
            "messageId": str(uuid.uuid4()), "sessionId": session, "businessId": BUSINESS, "userId": user,
            "content": content, "type": kind, "timestamp": at, "metadata": {"source": "websocket"}}))

    async def _last_messages(self, session: str, count: int) -> list[dict[str, Any]]:
        return await self._query(TableName=self._t.messages, IndexName=MESSAGES_BY_SESSION,
                                 KeyConditionExpression="sessionId = :s", ScanIndexForward=False, Limit=count,
                                 ExpressionAttributeValues=to_item({":s": session}))

    async def _remember_user(self, user: str, text: str, seen: int) -> None:
        await self._ddb.update_item(
            TableName=self._t.rag_user, Key=to_item({"businessId": BUSINESS, "userId": user}),
            UpdateExpression="SET lastMessage = :m, conversationLength = :n, updatedAt = :t",
            ExpressionAttributeValues=to_item({":m": text, ":n": seen + 1, ":t": iso(utc_now())}))


async def flow(s: Settings, conversations: int, turns: int, model_ms: int, ministack_pid: int) -> dict[str, Any]:
    """Run the flow here; CPU of this process and of the server (when its pid is known)."""
    meter = CpuMeter({"ministack": ministack_pid} if ministack_pid else {}, own="direct")
    async with hot_dynamodb_client(s) as ddb:
        direct = DirectFlow(ddb, s.tables)

        async def customer(index: int) -> None:
            user = f"direct-{uuid.uuid4().hex[:6]}-{index}"
            for turn in range(1, turns + 1):
                await direct.turn(user, f"turn {turn}: a table for two?", model_ms / 1000)

        calls, before, start = own_ddb_calls(), meter.read(), time.perf_counter()
        await asyncio.gather(*(customer(i) for i in range(conversations)))
        elapsed, spent, calls = time.perf_counter() - start, meter.since(before), own_ddb_calls() - calls
    n = conversations * turns
    cpu = {name: round(seconds * 1000 / n, 2) for name, seconds in spent.items()}
    return {"turns": n, "elapsed_s": round(elapsed, 2), "ddb_calls_per_turn": round(calls / n, 2),
            "cpu_ms_per_turn": cpu | {"total": round(sum(cpu.values()), 2)}}


def measure(base: dict[str, str], ministack_pid: int | None, conversations: int, turns: int, model_ms: int) -> dict[str, Any]:
    """The flow in a process of its own on fresh tables (dropped after)."""
    from agentstream.bench.fresh import drop_tables, fresh_env

    env, s, _ = fresh_env(base)
    try:
        out = subprocess.run([sys.executable, "-m", "agentstream.bench.direct", str(conversations), str(turns),
                              str(model_ms), str(ministack_pid or 0)],
                             env=os.environ | env, capture_output=True, text=True, timeout=900)
    finally:
        asyncio.run(drop_tables(s))
    if out.returncode != 0:
        raise RuntimeError(f"the direct flow failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """`agentstream bench direct`: the direct flow alone, on the configured or fresh services."""
    pids: dict[str, int] = {}
    with services(pids) as base:
        report("direct", measure(base, pids.get("ministack"), int(os.environ.get("BENCH_DIRECT_CONVERSATIONS", "200")),
                                 int(os.environ.get("BENCH_DIRECT_TURNS", "5")), 0))


if __name__ == "__main__":
    conversations, turns, model_ms, ministack_pid = map(int, sys.argv[1:5])
    settings = Settings()
    print(json.dumps(loops.run(flow(settings, conversations, turns, model_ms, ministack_pid), settings.event_loop)))
