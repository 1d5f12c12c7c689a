"""Gmail's token refresh with google-auth against the local fake token endpoint: the grant it
sends, what is stored, a 401 answered by one refresh and one retry, and the error classes."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from agentstream.adapters.channels import gmail
from agentstream.adapters.channels.base import SendCall, Text
from agentstream.adapters.channels.errors import PermanentError, RetryableError
from agentstream.adapters.channels.gmail_auth import GmailAuth, refresh_access_token
from agentstream.adapters.dynamo.credentials import validate
from agentstream.events import ReplyGenerated, new_event
from agentstream.settings import Settings
from agentstream.streams.outbound import external_sender
from tests.fakes.vendors import VendorServer

GMAIL = {"pushToken": "p", "accessToken": "old", "refreshToken": "refresh-1", "clientId": "client-1", "clientSecret": "shh"}


class MemoryStore:
    """CredentialStore's get and set, in memory, counting the writes."""

    def __init__(self, gmail: dict[str, str]) -> None:
        self.values = {"gmail": dict(gmail)}
        self.writes: list[dict[str, str]] = []

    async def get(self, business_id: str, provider: str) -> dict[str, str]:
        return dict(self.values.get(provider, {}))

    async def set(self, business_id: str, provider: str, values: dict[str, str]) -> dict[str, str]:
        self.writes.append(values)
        self.values[provider] = self.values.get(provider, {}) | values
        return dict(self.values[provider])


@pytest.fixture(scope="module")
def vendors() -> VendorServer:
    with VendorServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(autouse=True)
def fresh_state(vendors: VendorServer) -> None:
    vendors.state.requests.clear()
    vendors.state.gmail_refused = {"old", "expired-1"}
    vendors.state.google_tokens = []


def token_uri(vendors: VendorServer) -> str:
    return f"{vendors.base}/google/token"


async def test_refresh_sends_the_refresh_grant_and_returns_the_token_with_its_expiry(vendors: VendorServer) -> None:
    vendors.state.google_tokens = ["new-1"]
    values = await refresh_access_token(GMAIL, token_uri(vendors))
    assert values["accessToken"] == "new-1" and "refreshToken" not in values
    assert abs(int(values["tokenExpiry"]) - (time.time() + 3599)) < 60
    (grant,) = vendors.state.sent("/google/token")
    assert grant.form == {"grant_type": "refresh_token", "refresh_token": "refresh-1", "client_id": "client-1",
                          "client_secret": "shh"}


def test_credentials_set_takes_the_refresh_and_watch_keys() -> None:
    validate("gmail", {k: "x" for k in ("pushToken", "clientId", "clientSecret", "refreshToken", "watchTopic")})


async def test_refresh_errors_are_classified(vendors: VendorServer) -> None:
    with pytest.raises(PermanentError, match="missing clientId, clientSecret"):
        await refresh_access_token({"refreshToken": "r"}, token_uri(vendors))
    assert vendors.state.sent("/google/token") == [], "nothing is asked without a complete grant"
    with pytest.raises(PermanentError, match="invalid_grant") as revoked:
        await refresh_access_token(GMAIL, token_uri(vendors))
    assert "shh" not in str(revoked.value) and "refresh-1" not in str(revoked.value)
    with pytest.raises(RetryableError, match="unreachable"):
        await refresh_access_token(GMAIL, "http://127.0.0.1:1/token")


async def test_a_401_refreshes_stores_and_sends_again(vendors: VendorServer) -> None:
    vendors.state.google_tokens = ["new-1"]
    store = MemoryStore(GMAIL)
    auth = GmailAuth(store, token_uri(vendors))  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        sent = await gmail.send(SendCall("b", "gmail", {}, {"to": "a@b.c"}, f"{vendors.base}/gmail",
                                         SimpleNamespace(http=http, gmail=auth)), Text("Bună"))
    assert sent.startswith("g")
    tries = vendors.state.sent("/messages/send")
    assert [r.headers["authorization"] for r in tries] == ["Bearer old", "Bearer new-1"]
    assert len(vendors.state.sent("/google/token")) == 1
    assert store.values["gmail"]["accessToken"] == "new-1" and int(store.values["gmail"]["tokenExpiry"]) > time.time()
    assert store.values["gmail"]["refreshToken"] == "refresh-1"


async def test_a_second_401_after_the_refresh_is_retryable(vendors: VendorServer) -> None:
    vendors.state.google_tokens = ["expired-1"]
    auth = GmailAuth(MemoryStore(GMAIL), token_uri(vendors))  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        with pytest.raises(RetryableError, match="just-refreshed"):
            await gmail.send(SendCall("b", "gmail", {}, {"to": "a@b.c"}, f"{vendors.base}/gmail",
                                      SimpleNamespace(http=http, gmail=auth)), Text("x"))
    assert len(vendors.state.sent("/messages/send")) == 2 and len(vendors.state.sent("/google/token")) == 1


async def test_a_token_past_its_stored_expiry_is_refreshed_before_use_once_for_concurrent_calls(vendors: VendorServer) -> None:
    vendors.state.google_tokens = ["new-2", "unused"]
    store = MemoryStore(GMAIL | {"accessToken": "valid-but-stale", "tokenExpiry": str(int(time.time()) - 5)})
    auth = GmailAuth(store, token_uri(vendors))  # type: ignore[arg-type]
    used: list[str] = []

    async def request(token: str) -> str:
        used.append(token)
        await asyncio.sleep(0.01)
        return token

    assert await asyncio.gather(*(auth.call("b", request) for _ in range(3))) == ["new-2"] * 3
    assert used == ["new-2"] * 3 and len(store.writes) == 1 and len(vendors.state.sent("/google/token")) == 1
    assert not auth._locks, "no lock is kept per business once no refresh waits for it (a gateway serves many)"  # noqa: SLF001


async def test_delivery_of_a_gmail_reply_refreshes_an_expired_token(vendors: VendorServer) -> None:
    vendors.state.google_tokens = ["new-3"]
    store = MemoryStore(GMAIL)
    settings = Settings(GMAIL_API_BASE_URL=f"{vendors.base}/gmail", GOOGLE_TOKEN_URI=token_uri(vendors))
    reply = new_event("ReplyGenerated", business_id="b", user_id="ana@example.com", channel="gmail", payload={
        "content": "Sigur!", "inReplyTo": "e1", "sessionId": "s1", "model": "m",
        "deliverTo": {"to": "ana@example.com", "threadId": "T1", "subject": "Programare"}}).with_seq(2)
    assert isinstance(reply, ReplyGenerated)
    async with httpx.AsyncClient() as http:
        deps = SimpleNamespace(credentials=store, http=http, gmail=GmailAuth(store, settings.google_token_uri))  # type: ignore[arg-type]
        assert (await external_sender(deps, settings)(reply) or "").startswith("g")
    assert [r.headers["authorization"] for r in vendors.state.sent("/messages/send")] == ["Bearer old", "Bearer new-3"]
    assert store.values["gmail"]["accessToken"] == "new-3"
