"""`agentstream setup` against the real services: all tables, GSIs, stream, topics; idempotent."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from agentstream.adapters.kafka.client import topic_configs
from agentstream.bootstrap import setup
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.projection_store import get_active_session_for_user
from agentstream.adapters.dynamo.tables import (
    EVENTS_BY_ID, EVENTS_BY_INGEST, EVENTS_BY_STREAM, SESSIONS_DUE, SESSIONS_GSI, has_index, stream_arn,
)
from agentstream.adapters.dynamo.client import to_item
from agentstream.settings import Settings


async def test_setup_creates_everything_once(settings: Settings) -> None:
    first, topics = await setup(settings, partitions=2)
    second, topics_again = await setup(settings, partitions=2)
    assert sorted(first.created) == sorted(settings.tables.model_dump().values())  # every table of the contract
    assert len(first.created) == 19 and set(topics) == {settings.topic_events, settings.topic_replies, settings.topic_dlq,
                                                 settings.topic_shadow, settings.topic_handoffs, settings.topic_signals}
    configs = await topic_configs(settings.kafka_bootstrap_servers, [settings.topic_signals], ("retention.ms",))
    assert int(configs[settings.topic_signals]["retention.ms"]) <= 3_600_000  # signals matter for seconds
    assert not second.changed and topics_again == []
    async with dynamodb_client(settings) as ddb:
        assert await has_index(ddb, settings.tables.sessions, SESSIONS_GSI)
        assert await has_index(ddb, settings.tables.messages, "sessionId-timestamp-index")
        assert await has_index(ddb, settings.tables.messages, "businessId-timestamp-index")
        assert (await stream_arn(ddb, settings.tables.events)).startswith("arn:")
        assert await has_index(ddb, settings.tables.events, EVENTS_BY_ID)
        for table, index in ((settings.tables.events, EVENTS_BY_INGEST), (settings.tables.events, EVENTS_BY_STREAM),
                             (settings.tables.sessions, SESSIONS_DUE)):
            assert await has_index(ddb, table, index), index
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        desc = await admin.describe_topics([settings.topic_events])
        assert len(desc[0]["partitions"]) == 2
    finally:
        await admin.close()


async def create_sessions_table_without_gsi(ddb: Any, settings: Settings) -> None:
    """The sessions table as an older deployment may have it: no businessId-userId-index."""
    await ddb.create_table(
        TableName=settings.tables.sessions, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "sessionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "sessionId", "AttributeType": "S"}],
    )


async def test_setup_finishes_a_table_without_its_gsi_and_lookup_falls_back(settings: Settings) -> None:
    async with dynamodb_client(settings) as ddb:
        await create_sessions_table_without_gsi(ddb, settings)
        session = {"sessionId": "s1", "businessId": "b1", "userId": "u1", "status": "active", "lastMessageAt": "2026-01-01T10:00:00.000Z"}
        await ddb.put_item(TableName=settings.tables.sessions, Item=to_item(session))
        found = await get_active_session_for_user(ddb, settings.tables, "b1", "u1")
        assert found is not None and found["sessionId"] == "s1"
    report, _ = await setup(settings, with_topics=False)
    assert f"{settings.tables.sessions}/{SESSIONS_GSI}" in report.indexes_added
    async with dynamodb_client(settings) as ddb:
        assert await has_index(ddb, settings.tables.sessions, SESSIONS_GSI)
        found = await get_active_session_for_user(ddb, settings.tables, "b1", "u1")
        assert found is not None and found["sessionId"] == "s1"
        assert await get_active_session_for_user(ddb, settings.tables, "b1", "u2") is None


async def test_setup_adds_the_cost_indexes_to_an_older_events_table_and_they_cover_its_items(settings: Settings) -> None:
    """An events table from before the ingest and idempotency indexes: setup adds them, and the
    idempotency records already there are found through eventStreamId-index."""
    from agentstream.adapters.dynamo.event_store import EventStore
    from agentstream.events import new_event

    async with dynamodb_client(settings) as ddb:
        await ddb.create_table(
            TableName=settings.tables.events, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "streamId", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "streamId", "AttributeType": "S"}, {"AttributeName": "seq", "AttributeType": "N"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        store = EventStore(ddb, settings.tables.events)
        event = new_event("MessageReceived", business_id="b1", user_id="u1", channel="rest", payload={"content": "salut"})
        await store.append(event, external_id="rest:m1")
    report, _ = await setup(settings, with_topics=False)
    assert {f"{settings.tables.events}/{EVENTS_BY_INGEST}", f"{settings.tables.events}/{EVENTS_BY_STREAM}"} <= set(report.indexes_added)
    async with dynamodb_client(settings) as ddb:
        store = EventStore(ddb, settings.tables.events)
        assert await store.idempotency_keys("b1#u1") == [{"streamId": "idem#b1#rest:m1", "seq": 0}]
        assert await has_index(ddb, settings.tables.sessions, SESSIONS_DUE)  # a new table: created with it
