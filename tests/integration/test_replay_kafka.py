"""Replay from `agent.events.v1` (real broker) into empty tables: equal to the live tables, with
duplicates on the topic, an event the topic lost (read from the table), and an erased user who
stays erased although the topic still holds their events."""

from __future__ import annotations

from agentstream.adapters.kafka.client import dumps, ensure_topics
from agentstream.adapters.dynamo.client import scan_all
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.streams.forget import forget
from agentstream.streams.replay import Scope
from agentstream.adapters.kafka.client import KafkaClients
from agentstream.streams.topic_source import read_topic_events
from agentstream.wiring import new_replayer, forget_stores
from tests.integration import kafka_helpers
from tests.integration.world import World, drain, inbound


async def publish(world: World, streams: list[str], skip: set[tuple[str, int]]) -> None:
    """Every logged event of the streams, twice (a redelivery), except those in `skip`; then junk."""
    records = [(stream, dumps(event.to_json_dict())) for stream in streams for event in await world.store.read(stream)
               if (stream, event.seq) not in skip for _ in range(2)]
    await kafka_helpers.publish(world.settings, [*records, ("junk", b"not json")])


async def test_replay_from_the_topic_equals_the_live_tables(world: World) -> None:
    s = world.settings
    await ensure_topics(s, partitions=3)
    users = ("k1", "k2", "gone")
    for user in users:
        for i, minutes in enumerate((0, 5, 120)):
            await world.store.append(inbound(user, f"aveți loc mâine? {i}", minutes))
        await drain(world, f"demo-salon#{user}")
    await publish(world, [f"demo-salon#{u}" for u in users], skip={("demo-salon#k2", 3)})
    await forget(forget_stores(world.ddb, s), s, "demo-salon", "gone")

    topic = await read_topic_events(KafkaClients(s.kafka_bootstrap_servers), s.topic_events, Scope("demo-salon").wants)
    assert topic.unreadable == 1 and sorted(topic.by_stream) == [f"demo-salon#{u}" for u in sorted(users)]
    t = s.tables
    empty = t.model_copy(update={"sessions": t.sessions + "-k", "messages": t.messages + "-k", "rag_user": t.rag_user + "-k"})
    await ensure_tables(world.ddb, empty, only=[empty.sessions, empty.messages, empty.rag_user])
    report = await new_replayer(world.ddb, s.model_copy(update={"tables": empty}), fresh=True).run(Scope("demo-salon"), topic=topic)
    assert report.events == 2 * 6, "k1 and k2 fully (k2's lost event read from the table); nothing of the erased user"
    for live, rebuilt in ((t.sessions, empty.sessions), (t.messages, empty.messages), (t.rag_user, empty.rag_user)):
        key = lambda i: (i.get("sessionId"), i.get("messageId"), i.get("userId"))  # noqa: E731
        assert sorted(await scan_all(world.ddb, TableName=live), key=key) == sorted(await scan_all(world.ddb, TableName=rebuilt), key=key)
    assert not any(i.get("userId") == "gone" for i in await scan_all(world.ddb, TableName=empty.rag_user))
