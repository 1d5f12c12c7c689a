"""Per-business channel secrets in business-external-credentials, encrypted at rest (Fernet).

The encryption key comes from AGENTSTREAM_SECRET_KEY. Values never reach the logs; `show`
prints them masked. The REST API key is stored only as a SHA-256 hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from agentstream.adapters.dynamo import from_item, to_item

PROVIDERS: dict[str, tuple[str, ...]] = {
    "meta": ("appSecret", "verifyToken", "accessToken"),
    "twilio": ("accountSid", "authToken", "fromNumber"),
    "gmail": ("pushToken", "accessToken", "refreshToken"),
    "widget": ("signingKey",),
    "rest": ("apiKey",),
}
GENERATED = {"meta": "verifyToken", "gmail": "pushToken", "widget": "signingKey", "rest": "apiKey"}


class CredentialsError(ValueError):
    """Unknown provider or key, or no encryption key configured."""


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def mask(value: str) -> str:
    return "****" if len(value) < 8 else f"{value[:2]}…{value[-2:]} ({len(value)} chars)"


def validate(provider: str, values: dict[str, str]) -> None:
    allowed = PROVIDERS.get(provider)
    if allowed is None:
        raise CredentialsError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise CredentialsError(f"{provider} has no key {unknown[0]!r}; keys: {', '.join(allowed)}")


class CredentialStore:
    def __init__(self, ddb: Any, table: str, secret_key: str | None) -> None:
        if not secret_key:
            raise CredentialsError("AGENTSTREAM_SECRET_KEY is not set (a Fernet key: `agentstream credentials keygen`)")
        self._ddb = ddb
        self._table = table
        self._fernet = Fernet(secret_key.encode())
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    async def get(self, business_id: str, provider: str) -> dict[str, str]:
        """The decrypted secrets of one provider ({} when none are set); cached for 30 s."""
        hit = self._cache.get((business_id, provider))
        if hit and hit[0] > time.monotonic():
            return hit[1]
        resp = await self._ddb.get_item(
            TableName=self._table, Key=to_item({"businessId": business_id, "provider": provider}), ConsistentRead=True
        )
        values = self._decrypt(from_item(resp["Item"])["secret"]) if "Item" in resp else {}
        self._cache[(business_id, provider)] = (time.monotonic() + 30, values)
        return values

    async def set(self, business_id: str, provider: str, values: dict[str, str]) -> dict[str, str]:
        """Merge new values into a provider's secrets; the REST apiKey is kept as its hash."""
        validate(provider, values)
        current = await self.get(business_id, provider)
        if provider == "rest" and "apiKey" in values:
            values = {"apiKeyHash": hash_api_key(values["apiKey"])}
        merged = current | values
        item = {"businessId": business_id, "provider": provider, "secret": self._encrypt(merged), "updatedAt": int(time.time())}
        await self._ddb.put_item(TableName=self._table, Item=to_item(item))
        self._cache.pop((business_id, provider), None)
        return merged

    async def set_state(self, business_id: str, name: str, values: dict[str, str]) -> None:
        """Channel state that is not a vendor secret (e.g. Gmail's last history id), stored the same way."""
        item = {"businessId": business_id, "provider": name, "secret": self._encrypt(values), "updatedAt": int(time.time())}
        await self._ddb.put_item(TableName=self._table, Item=to_item(item))
        self._cache.pop((business_id, name), None)

    async def rotate(self, business_id: str, provider: str) -> dict[str, str]:
        """Replace the secret agentstream generates for a provider; returns the new plain value."""
        key = GENERATED.get(provider)
        if key is None:
            raise CredentialsError(f"{provider} secrets are issued by the vendor; set them with `credentials set`")
        fresh = {key: secrets.token_urlsafe(32)}
        await self.set(business_id, provider, fresh)
        return fresh

    async def check_api_key(self, business_id: str, api_key: str) -> bool:
        stored = (await self.get(business_id, "rest")).get("apiKeyHash", "")
        return bool(stored) and hmac.compare_digest(stored, hash_api_key(api_key))

    def _encrypt(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def _decrypt(self, token: str) -> dict[str, str]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise CredentialsError("stored credentials cannot be decrypted with AGENTSTREAM_SECRET_KEY") from None


def new_secret_key() -> str:
    return Fernet.generate_key().decode()


# ---- widget visitor tokens -------------------------------------------------------------------


def issue_widget_token(signing_key: str, business_id: str, user_id: str, ttl_s: int, now: float | None = None) -> tuple[str, int]:
    """A signed, expiring token binding a visitor to one business: (token, expiresAt epoch s)."""
    expires = int((now or time.time()) + ttl_s)
    body = f"{business_id}|{user_id}|{expires}"
    sig = hmac.new(signing_key.encode(), body.encode(), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=") + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")
    return token, expires


def verify_widget_token(signing_key: str, token: str, business_id: str, user_id: str, now: float | None = None) -> bool:
    try:
        body_b64, sig_b64 = token.split(".", 1)
        body = base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4)).decode()
        sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
        bid, uid, expires = body.split("|")
    except ValueError:
        return False
    good = hmac.new(signing_key.encode(), body.encode(), hashlib.sha256).digest()
    return (
        hmac.compare_digest(good, sig)
        and bid == business_id
        and uid == user_id
        and int(expires) > (now or time.time())
    )
