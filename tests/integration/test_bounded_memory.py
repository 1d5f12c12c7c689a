"""Every cache keyed by caller input is bounded in entries and time, unknown businesses
included: requests with random 4 KB business ids leave the gateway's memory flat (tracemalloc
of the gateway's adapters and caches, and the caches' sizes). No services: the gateway's
DynamoDB holds nothing and answers at once. `make test` sends 2 000 (a cache without its bound
would grow by 6 MB over the measured 1 500, a hundred times the margin); `make soak` 10 000."""

from __future__ import annotations

import gc
import logging
import secrets
import tracemalloc
from functools import partial
from typing import Any

import httpx
import pytest
import structlog
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo import credentials
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.http.gateway import create_app
from agentstream.settings import Settings
from tests.sizes import size
from tests.unit import gateway_on_moto
from tests.unit.gateway_on_moto import gateway_deps

ENTRIES = 200  # CACHE_ENTRIES for this test: reached early, so what follows must not grow
WARM, MEASURED = size(500, 1_000), size(1_500, 9_000)  # requests before and after the caches fill
HOUR = 3600.0  # the caches' time bound in this test


def ours() -> int:
    """Bytes held by allocations made in the gateway's adapters and the caches they use."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/adapters/*", all_frames=True), tracemalloc.Filter(True, "*/cachetools/*", all_frames=True)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


class NothingStored:
    """A DynamoDB with no items, answering at once: only the gateway's own memory is measured."""

    async def get_item(self, **_: Any) -> dict[str, Any]:
        return {}


async def test_random_4kb_business_ids_leave_memory_flat(monkeypatch: pytest.MonkeyPatch) -> None:
    # the bound in entries is what is measured: with the usual 30 s, a slow machine's entries expire
    # before they are counted
    monkeypatch.setattr(credentials, "CACHE_TTL_S", HOUR)
    monkeypatch.setattr(gateway_on_moto, "BusinessDirectory", partial(BusinessDirectory, ttl_s=HOUR))
    settings = Settings(credentials_key=Fernet.generate_key().decode(), cache_entries=ENTRIES)
    d = gateway_deps(NothingStored(), settings)
    d.limits = None  # the shared limits' counters are DynamoDB's memory, not the gateway's
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(d)), base_url="http://gw")

    async def burst(n: int) -> None:
        for i in range(n):
            business = secrets.token_urlsafe(3072)  # 4 KB
            if i % 2:
                answer = await client.post(f"/v1/widget/{business}/visitors")
                assert answer.status_code == 404
            else:
                answer = await client.post("/v1/messages", headers={"Authorization": f"Bearer {business}.x"}, content=b"{}")
                assert answer.status_code == 401

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # thousands of refusals
    tracemalloc.start(1)
    try:
        await burst(WARM)  # half of them each kind: more than ENTRIES of each
        warm = ours()
        await burst(MEASURED)
        after = ours()
    finally:
        tracemalloc.stop()
        structlog.reset_defaults()
        await client.aclose()
    assert d.credentials.cached() == ENTRIES and d.directory.cached() == ENTRIES, "full, and no fuller"
    assert after - warm < 64 * 1024, f"grew {after - warm} bytes over {MEASURED} requests after the caches filled"
