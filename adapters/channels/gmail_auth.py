"""Gmail's OAuth: access tokens last an hour, so they are refreshed with the stored refresh
token (google-auth, at GOOGLE_TOKEN_URI) and the new one is stored, encrypted, with its expiry."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import timezone
from functools import partial
from typing import Protocol, TypeVar

import requests
import structlog
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials

from agentstream.adapters.channels.errors import PermanentError, RetryableError, Unauthorized

log = structlog.get_logger(__name__)
T = TypeVar("T")
TIMEOUT_S = 15.0
EARLY_S = 60  # a token this close to its stored expiry is refreshed before it is used
NEEDED = ("refreshToken", "clientId", "clientSecret")


class TokenStore(Protocol):
    """The business credentials store (adapters/credentials.CredentialStore), as far as Gmail's
    tokens need it."""

    async def get(self, business_id: str, provider: str) -> dict[str, str]: ...

    async def set(self, business_id: str, provider: str, values: dict[str, str]) -> dict[str, str]: ...


def _exchange(creds: dict[str, str], token_uri: str) -> dict[str, str]:
    """Blocking: trade the refresh token for a new access token; the values to store."""
    google = Credentials(None, refresh_token=creds["refreshToken"], token_uri=token_uri,
                         client_id=creds["clientId"], client_secret=creds["clientSecret"])
    with requests.Session() as session:
        google.refresh(partial(Request(session), timeout=TIMEOUT_S))
    values = {"accessToken": str(google.token)}
    if google.expiry:  # naive UTC
        values["tokenExpiry"] = str(int(google.expiry.replace(tzinfo=timezone.utc).timestamp()))
    if google.refresh_token and google.refresh_token != creds["refreshToken"]:
        values["refreshToken"] = google.refresh_token
    return values


async def refresh_access_token(creds: dict[str, str], token_uri: str) -> dict[str, str]:
    """A new accessToken (and tokenExpiry, epoch s) for a business's gmail credentials, fetched
    in a thread; RetryableError when Google may answer later, PermanentError when it never will."""
    missing = [k for k in NEEDED if not creds.get(k)]
    if missing:
        raise PermanentError(f"cannot refresh the Gmail access token: missing {', '.join(missing)}")
    try:
        return await asyncio.to_thread(_exchange, creds, token_uri)
    except RefreshError as exc:
        kind = RetryableError if exc.retryable else PermanentError
        raise kind(f"Google token refresh failed: {str(exc)[:200]}") from None
    except TransportError as exc:
        raise RetryableError(f"Google token endpoint unreachable: {type(exc).__name__}") from None


def expiring(creds: dict[str, str], now: float | None = None) -> bool:
    """No access token, or one whose stored expiry is (nearly) past."""
    expiry = creds.get("tokenExpiry")
    return not creds.get("accessToken") or (bool(expiry) and int(expiry or 0) < (now or time.time()) + EARLY_S)


class GmailAuth:
    """Runs Gmail API calls with a business's access token; refreshes it when it has expired or
    Google answers 401 (one refresh at a time per business), stores it and calls once more."""

    def __init__(self, store: TokenStore, token_uri: str) -> None:
        self._store = store
        self._token_uri = token_uri
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()  # held while in use

    async def call(self, business_id: str, request: Callable[[str], Awaitable[T]]) -> T:
        """`request(access_token)`; after a refresh a 401 again is a RetryableError."""
        creds = await self._store.get(business_id, "gmail")
        if not expiring(creds):
            try:
                return await request(creds["accessToken"])
            except Unauthorized:
                log.info("gmail.token_refused", businessId=business_id)
        creds = await self.refresh(business_id, refused=creds.get("accessToken", ""))
        try:
            return await request(creds["accessToken"])
        except Unauthorized:
            raise RetryableError("Gmail API answered 401 to a just-refreshed access token") from None

    async def usable(self, business_id: str) -> dict[str, str]:
        """The business's gmail credentials with a token that is not about to expire (refreshed if it is)."""
        creds = await self._store.get(business_id, "gmail")
        return creds if not expiring(creds) else await self.refresh(business_id, refused=creds.get("accessToken", ""))

    async def refresh(self, business_id: str, refused: str = "") -> dict[str, str]:
        """The business's gmail credentials with a usable token: one another task stored
        meanwhile, or a new one from Google (then stored)."""
        lock = self._locks.setdefault(business_id, asyncio.Lock())  # this name keeps it while we wait and hold it
        async with lock:
            creds = await self._store.get(business_id, "gmail")
            if creds.get("accessToken") != refused and not expiring(creds):
                return creds
            values = await refresh_access_token(creds, self._token_uri)
            log.info("gmail.token_refreshed", businessId=business_id, expiresAt=values.get("tokenExpiry"))
            return await self._store.set(business_id, "gmail", values)
