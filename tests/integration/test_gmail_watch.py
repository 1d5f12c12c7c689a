"""Gmail watch renewal on the real local DynamoDB server against the fake Gmail API: only watches
about to lapse (or never started) are renewed, only by the holder of the timer's lease, and
`agentstream status` shows each business's watch expiry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from agentstream.adapters.channels.gmail_auth import GmailAuth
from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.streams.gmail_watch import LEASE, WatchRenewer
from agentstream.streams.leases import Lease
from agentstream.wiring import gmail_watch_renewer, lease_table
from tests.conftest import isolated_env, settings_from
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints

TOPIC = "projects/salon/topics/gmail"
HOUR_MS = 3600 * 1000


@dataclass
class Setup:
    deps: SimpleNamespace  # what the gateway's Deps give the timer
    vendors: VendorServer

    @property
    def store(self) -> CredentialStore:
        return self.deps.credentials

    def renewer(self, owner: str, ttl_ms: int = 60_000) -> WatchRenewer:
        return gmail_watch_renewer(self.deps, owner, ttl_ms)  # type: ignore[arg-type]

    def watch_calls(self) -> list[Any]:
        return self.vendors.state.sent("/users/me/watch")


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture
async def world(endpoints: Endpoints, vendors: VendorServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    settings = settings_from(isolated_env(endpoints, **vendors.env()), monkeypatch)
    vendors.state.requests.clear()
    async with dynamodb_client(settings) as ddb, httpx.AsyncClient() as http:
        t = settings.tables  # `status` also reads the businesses and their month's model spend
        await ensure_tables(ddb, t, only=[t.credentials, t.leases, t.business_info, t.config_history, t.usage, t.events])
        store = CredentialStore(ddb, settings.tables.credentials, settings.credentials_key)
        now = int(time.time() * 1000)
        for business, expiration in (("b-lapsing", now + 2 * HOUR_MS), ("b-fresh", now + 6 * 24 * HOUR_MS), ("b-new", None)):
            await store.set(business, "gmail", {"accessToken": f"tok-{business}", "watchTopic": TOPIC})
            if expiration:
                await store.set_state(business, "gmail-watch", {"expiration": str(expiration), "topic": TOPIC})
        await store.set("b-no-topic", "gmail", {"accessToken": "tok"})
        deps = SimpleNamespace(settings=settings, ddb=ddb, credentials=store, http=http,
                               gmail=GmailAuth(store, settings.google_token_uri))
        yield Setup(deps, vendors)


async def test_only_lapsing_or_new_watches_are_renewed_and_only_by_the_lease_holder(world: Setup) -> None:
    one, two = world.renewer("one"), world.renewer("two")
    results = await asyncio.gather(one.round(), two.round())
    assert sorted(results, key=lambda r: r is None) == [["b-lapsing", "b-new"], None], "one holder renews, the other does nothing"
    calls = world.watch_calls()
    assert sorted(c.headers["authorization"] for c in calls) == ["Bearer tok-b-lapsing", "Bearer tok-b-new"]
    assert all(c.json == {"topicName": TOPIC} for c in calls)
    for business in ("b-lapsing", "b-new"):
        state = await world.store.get(business, "gmail-watch")
        assert int(state["expiration"]) > time.time() * 1000 + 6 * 24 * HOUR_MS and state["historyId"] == "4242"
    assert (await world.store.get("b-new", "gmail-state"))["historyId"] == "4242", "a first watch says where reading starts"

    holder, other = (one, two) if results[0] is not None else (two, one)
    assert await holder.round() == [] and await other.round() is None, "nothing is due any more; the lease stays held"
    await holder.release()
    assert await other.round() == [] and await holder.round() is None, "a released lease is taken by the other"
    await world.store.set("b-fresh", "gmail", {"watchTopic": TOPIC + "-v2"})
    assert await other.round() == ["b-fresh"], "a watch on another topic is renewed at once"
    assert [c.json["topicName"] for c in world.watch_calls()[2:]] == [TOPIC + "-v2"]


async def test_a_dead_holders_lease_is_taken_over_after_it_expires(world: Setup) -> None:
    one, two = world.renewer("one", ttl_ms=1000), world.renewer("two", ttl_ms=1000)
    assert await one.round() is not None and await two.round() is None
    await asyncio.sleep(1.2)  # `one` stops renewing, as a killed gateway would
    assert await two.round() == []
    assert await one.round() is None


async def status_output() -> str:
    """`agentstream status`'s table; tried again while a fresh broker has no group coordinator yet."""
    for _ in range(10):
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "agentstream.cli", "status"],
                                       env=os.environ | {"COLUMNS": "200"}, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, timeout=120)
        if "GroupCoordinatorNotAvailable" not in done.stdout:
            break
        await asyncio.sleep(1)
    assert done.returncode == 0, done.stdout
    return done.stdout


async def test_status_shows_each_businesss_watch_expiry(world: Setup) -> None:
    await lease_table(world.deps.ddb, world.deps.settings.tables.leases, "a-gateway").acquire(Lease(LEASE))
    out = await status_output()
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if line.count("│") == 3}
    for business in ("b-lapsing", "b-fresh"):
        expiration = int((await world.store.get(business, "gmail-watch"))["expiration"])
        assert rows[f"gmail watch {business}"] == time.strftime("expires %Y-%m-%d %H:%M UTC", time.gmtime(expiration / 1000)), out
    assert rows["gmail watch b-new"] == "not started yet (the gateway starts it)"
    assert rows["gmail watch b-no-topic"] == "no watchTopic set"
    assert not any(name.startswith("shard") for name in rows), "the timer's lease is no bridge shard"
