"""A gateway on moto's DynamoDB in this process (fast tier): one business with a widget key and
an API key, served by uvicorn on a free port (sockets included)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.http.gateway import create_app
from agentstream.adapters.http.common import Deps
from agentstream.adapters.ingest import Ingestor
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.http.rate_limits import GatewayLimits
from agentstream.adapters.http.visitors import VisitorRecords
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.local.services import free_port
from agentstream.settings import Settings


# limits no test of something else reaches (every test's calls come from 127.0.0.1)
ROOMY = {name: "100000/hour" for name in ("limit_socket_frames", "limit_visitors_per_address", "limit_visitors_per_business",
                                         "limit_sign_in_per_address", "limit_sign_in_per_business")}


@dataclass
class MotoGateway:
    d: Deps
    business: str
    api_key: str
    base: str
    http: httpx.AsyncClient

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")


def gateway_deps(ddb: Any, settings: Settings) -> Deps:
    credentials = CredentialStore(ddb, settings.tables.credentials, settings.credentials_key, settings.cache_entries)
    store = EventStore(ddb, settings.tables.events)
    return Deps(settings=settings, ddb=ddb, store=store, ingestor=Ingestor(store),
                directory=BusinessDirectory(ddb, settings.tables, entries=settings.cache_entries), projections=ProjectionStore(ddb, settings.tables),
                credentials=credentials, hub=SocketHub(), limits=GatewayLimits(settings, ddb),
                visitors=VisitorRecords(ddb, settings.tables.widget_visitors, settings.widget_visitor_lifetime_days * 86_400))


@contextlib.asynccontextmanager
async def serving(d: Deps) -> AsyncIterator[str]:
    """The gateway app of `d` served by uvicorn on a free port of 127.0.0.1; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(d), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", ws_max_size=64 * 1024))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def moto_gateway(moto_ddb: Any, moto_settings: Settings, biz: str) -> AsyncIterator[MotoGateway]:
    settings = moto_settings.model_copy(update={"credentials_key": Fernet.generate_key().decode(),
                                                "public_base_url": "http://127.0.0.1", **ROOMY})
    await moto_ddb.put_item(TableName=settings.tables.business_info,
                            Item=to_item({"businessId": biz, "name": "Salon", "businessType": "salon"}))
    d = gateway_deps(moto_ddb, settings)
    await d.credentials.rotate(biz, "widget")
    api_key = (await d.credentials.rotate(biz, "rest"))["apiKey"]
    async with serving(d) as base, httpx.AsyncClient(base_url=base) as http:
        yield MotoGateway(d, biz, api_key, base, http)
