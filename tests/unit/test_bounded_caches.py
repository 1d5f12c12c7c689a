"""A key that does not match the cached hash reads the credentials again (at most once a second
per business), so a freshly rotated API key works at once. (The caches' bounds:
tests/integration/test_bounded_memory.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.dynamo import credentials as credentials_module
from agentstream.adapters.dynamo.credentials import CredentialStore
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture


async def test_a_freshly_rotated_api_key_works_at_once_and_rereads_are_rate_bounded(moto_gateway: MotoGateway,
                                                                                  monkeypatch: Any) -> None:
    gw = moto_gateway
    headers = lambda key: {"Authorization": f"Bearer {key}"}  # noqa: E731
    assert (await gw.http.get(f"/v1/analytics/{gw.business}", headers=headers(gw.api_key))).status_code == 503  # known, cached
    gateway_store = gw.d.credentials
    rotator = CredentialStore(gw.d.ddb, gw.d.settings.tables.credentials, gw.d.settings.credentials_key)  # another process
    fresh = (await rotator.rotate(gw.business, "rest"))["apiKey"]
    await asyncio.sleep(credentials_module.REREAD_AFTER_S)  # no longer 30 s: the next wrong-looking key reads again
    assert (await gw.http.get(f"/v1/analytics/{gw.business}", headers=headers(fresh))).status_code == 503, "works at once"
    assert (await gw.http.get(f"/v1/analytics/{gw.business}", headers=headers(gw.api_key))).status_code == 401

    reads: list[str] = []
    real = gateway_store._ddb.get_item

    async def counted(**kw: Any) -> Any:
        reads.append(kw["Key"]["businessId"]["S"])
        return await real(**kw)

    monkeypatch.setattr(gateway_store._ddb, "get_item", counted)
    for _ in range(20):  # wrong keys in a burst: at most one read a second for this business
        assert (await gw.http.get(f"/v1/analytics/{gw.business}", headers=headers(f"{gw.business}.wrong"))).status_code == 401
    assert reads.count(gw.business) <= 2
