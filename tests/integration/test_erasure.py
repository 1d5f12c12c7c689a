"""Provable erasure (issue 14, item 4) against the real local server and broker: a customer's
live traffic through the processor and the business's people reading it in the inbox, then
`agentstream forget --proof` and `--check-proof` as a person runs them; and after the erasure a replay from the table and from Kafka brings nothing
of the customer back, facts included."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo.client import query_all, scan_all, to_item
from agentstream.adapters.dynamo.inbox_views import InboxViews
from agentstream.adapters.kafka.client import ensure_topics, topics
from agentstream.events import new_event
from agentstream.registry import PROJECTIONS
from agentstream.streams.erasure import left_over
from agentstream.wiring import forget_stores, run_forget_with_receipt
from tests.integration.test_replay_kafka import publish
from tests.integration.world import T0, World, drain, inbound

PHONE = "+40712345678"  # a WhatsApp customer: the userId is the phone number
STREAM = f"demo-salon#{PHONE}"
MESSAGES = ("Bună, mă numesc Ana Popescu. Aș vrea o programare la tuns mâine la 10.",
            "Emailul meu e ana.popescu@example.com, mulțumesc!")
PLAIN = (PHONE, PHONE[1:], "0712345678", "Ana", "Popescu", "ana.popescu@example.com", STREAM,
         hashlib.sha256(PHONE.encode()).hexdigest(), hashlib.sha256(STREAM.encode()).hexdigest())
HOUR_MS = 3_600_000


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentstream.cli", *args], env={**os.environ, **env},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


async def live_traffic(world: World) -> None:
    """The customer's two WhatsApp messages and another customer's, through the processor (which
    writes every registered projection); every logged event also on the events topic."""
    await ensure_topics(world.settings, partitions=3)
    for i, text in enumerate(MESSAGES):
        event = new_event("MessageReceived", business_id="demo-salon", user_id=PHONE, channel="whatsapp",
                          occurred_at=T0 + timedelta(minutes=i),
                          payload={"content": text, "externalId": f"wamid.{i}", "replyTo": {"to": PHONE}})
        await world.store.append(event, external_id=f"wamid.{i}")
    await drain(world, STREAM)
    for i in range(2):
        await world.store.append(inbound("stays", f"aveți loc azi? {i}", i))
    await drain(world, "demo-salon#stays")
    await publish(world, [STREAM, "demo-salon#stays"], skip=set())


async def customer_items(world: World, user: str) -> dict[str, int]:
    """The customer's items, found by scanning every table (the test's own, independent reading)."""
    t = world.settings.tables
    counts = {"events": len(await query_all(world.ddb, TableName=t.events, KeyConditionExpression="streamId = :s",
                                            ExpressionAttributeValues=to_item({":s": f"demo-salon#{user}"})))}
    for where in ("sessions", "messages", "rag_user", "facts"):
        counts[where] = sum(1 for i in await scan_all(world.ddb, TableName=getattr(t, where)) if i.get("userId") == user)
    return counts


async def inbox_reads(world: World) -> dict[str, set[str]]:
    """Two people of the business open each customer's conversation in the inbox (what GET
    /inbox/conversations/{id} records); per user, the sessions whose view state is kept."""
    sessions: dict[str, set[str]] = {}
    views = InboxViews(world.ddb, world.settings.tables.inbox_views)
    for session in await scan_all(world.ddb, TableName=world.settings.tables.sessions):
        if session.get("businessId") == "demo-salon" and session.get("userId") in (PHONE, "stays"):
            sessions.setdefault(session["userId"], set()).add(session["sessionId"])
            for reader in ("Maria", "Ion"):
                await views.opened("demo-salon", session["sessionId"], reader, 2)
    return sessions


async def viewed_sessions(world: World) -> set[str]:
    """The sessions with view state in the inbox views table (the test's own scan)."""
    return {i["sessionId"] for i in await scan_all(world.ddb, TableName=world.settings.tables.inbox_views)}


async def test_forget_proof_writes_a_signed_receipt_that_check_proof_verifies(world: World, tmp_path: Path) -> None:
    s = world.settings
    await live_traffic(world)
    read = await inbox_reads(world)
    assert len(read[PHONE]) == 1 and len(read["stays"]) == 1 and read[PHONE] | read["stays"] <= await viewed_sessions(world)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:  # the receipt must report what the broker applies, not a default
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic_replies, {"retention.ms": str(HOUR_MS)})])
    finally:
        await admin.close()
    before = await customer_items(world, PHONE)
    assert before["events"] == 4 and before["sessions"] == 1 and before["messages"] == 4 and before["rag_user"] == 1
    facts_registered = any("facts" in p.owns for p in PROJECTIONS)
    assert before["facts"] == (1 if facts_registered else 0)

    receipt_file = tmp_path / "receipt.json"
    erased = cli("forget", "--business", "demo-salon", "--user", PHONE, "--proof", str(receipt_file))
    assert erased.returncode == 0, erased.stdout
    assert "items left after the erasure: none" in erased.stdout and "still in Kafka" in erased.stdout
    assert await customer_items(world, PHONE) == dict.fromkeys(before, 0)
    viewed = await viewed_sessions(world)
    assert not read[PHONE] & viewed, "the inbox's view state of the customer's session is gone"
    assert read["stays"] <= viewed, "the other customer's is kept"

    text = receipt_file.read_text()
    for plain in PLAIN:
        assert plain not in text, f"{plain!r} is in the receipt"
    receipt = json.loads(text)
    owned = {where for p in PROJECTIONS for where in p.owns}
    assert set(receipt["left"]) == {"events", "idempotency_records", "inbox_views", "widget_visitors", "media", *owned}  # media: the S3 objects
    assert set(receipt["left"].values()) == {0}
    deleted = {where: entry["count"] for where, entry in receipt["deleted"].items()}
    assert all(len(entry["keys"]) == entry["count"] for entry in receipt["deleted"].values())
    assert {where: deleted.get(where, 0) for where in before} == before, "deleted counts are what was there"
    assert deleted["idempotency_records"] == 4, "two channel ids, two replies"
    assert deleted["inbox_views"] == 2, "two readers of the customer's one session"
    assert receipt["tombstone"]["present"] and receipt["tombstone"]["forgottenAt"] == receipt["forgottenAt"]
    assert receipt["deleted"]["events"]["table"] == s.tables.events

    erased_at = datetime.fromisoformat(receipt["forgottenAt"].replace("Z", "+00:00"))
    kafka = {k["topic"]: k for k in receipt["kafka"]}
    assert list(kafka) == topics(s)
    replies = kafka[s.topic_replies]
    assert replies["retentionMs"] == HOUR_MS and replies["cleanupPolicy"] == "delete"
    assert replies["agedOutAt"] == (erased_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert replies["until"] > replies["agedOutAt"]
    assert all(k["exists"] and k["partition"] in (0, 1, 2) and k["until"] for k in kafka.values())

    valid = cli("forget", "--check-proof", str(receipt_file))
    assert valid.returncode == 0 and valid.stdout.startswith("receipt valid: "), valid.stdout
    assert len(valid.stdout.strip().splitlines()) == 1

    tampered = json.loads(text)
    tampered["deleted"]["messages"]["count"] -= 1
    tampered["deleted"]["messages"]["keys"].pop()
    (tmp_path / "tampered.json").write_text(json.dumps(tampered, indent=2))
    bad = cli("forget", "--check-proof", str(tmp_path / "tampered.json"))
    assert bad.returncode == 1 and bad.stdout.startswith("receipt INVALID: ") and "changed" in bad.stdout, bad.stdout

    other_key = cli("forget", "--check-proof", str(receipt_file), AGENTSTREAM_SECRET_KEY=Fernet.generate_key().decode())
    assert other_key.returncode == 1 and "receipt INVALID: signed with another secret key" in other_key.stdout, other_key.stdout

    mixed = cli("forget", "--check-proof", str(receipt_file), "--business", "demo-salon")
    assert mixed.returncode == 2 and mixed.stdout.strip() == "agentstream forget: --check-proof FILE takes no --business, --user or --proof"
    missing = cli("forget", "--business", "demo-salon")
    assert missing.returncode == 2 and len(missing.stdout.strip().splitlines()) == 1 and "--user are required" in missing.stdout


async def test_after_forget_a_replay_from_the_table_or_from_kafka_brings_nothing_back(world: World) -> None:
    s = world.settings
    await live_traffic(world)
    stays = await customer_items(world, "stays")
    report, receipt = await run_forget_with_receipt(s, "demo-salon", PHONE)
    assert report.events == 4 and set(receipt["left"].values()) == {0}

    from_table = cli("replay", "--business", "demo-salon")
    assert from_table.returncode == 0 and "streams: 1; events folded: 4" in from_table.stdout, from_table.stdout
    just_them = cli("replay", "--business", "demo-salon", "--user", PHONE)
    assert just_them.returncode == 0 and "events folded: 0" in just_them.stdout, just_them.stdout
    from_kafka = cli("replay", "--business", "demo-salon", "--source", "kafka")
    assert from_kafka.returncode == 0 and "events folded: 4" in from_kafka.stdout, from_kafka.stdout  # the other customer's only

    assert await customer_items(world, PHONE) == dict.fromkeys(stays, 0), "nothing of the erased customer, facts included"
    assert await customer_items(world, "stays") == stays, "the other customer was rebuilt as before"
    t = s.tables
    for where in ("events", "sessions", "messages", "rag_user", "facts"):
        found = json.dumps(await scan_all(world.ddb, TableName=getattr(t, where)), ensure_ascii=False, default=str)
        assert PHONE[1:] not in found.replace(f"forgotten#{STREAM}", ""), f"{where} still names the customer"
    assert set((await left_over(forget_stores(world.ddb, s), s, "demo-salon", PHONE, report.keys)).values()) == {0}
