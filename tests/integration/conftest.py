"""The `world` fixture: the worker's processor on this test's own tables (see world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentstream.bootstrap import populate
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.events import Event
from agentstream.settings import Settings
from tests.integration.world import CountingResponder, World, new_processor


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    async with dynamodb_client(settings) as ddb:
        await ensure_tables(ddb, settings.tables)
        await populate(settings)
        published: list[Event] = []
        responder = CountingResponder()
        processor = new_processor(ddb, settings, responder, published)
        yield World(ddb, settings, EventStore(ddb, settings.tables.events), processor, responder, published)
