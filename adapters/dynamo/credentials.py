"""Per-business channel secrets in business-external-credentials, encrypted at rest (AES-GCM,
bound to the business and provider; see `Sealer`).

The encryption keys come from AGENTSTREAM_SECRET_KEY (and AGENTSTREAM_PREVIOUS_SECRET_KEYS). Values never reach the logs; `show`
prints them masked. A REST API key is `<businessId>.<secret>`; only the secret's SHA-256 hash is
stored. Widget visitor tokens are signed with itsdangerous by the business's widget signing key
(the previous key still verifies, so a rotation orphans nobody).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from itsdangerous import BadData, URLSafeSerializer

from agentstream.adapters.channels.base import CredentialSpec
from agentstream.adapters.channels.registry import credential_specs
from agentstream.adapters.channels.rest import PROVIDER as REST
from agentstream.adapters.channels.widget import PROVIDER as WIDGET
from agentstream.adapters.dynamo.client import error_code, from_item, scan_all, to_item
from agentstream.keys import KeyRing, SecretKeyMissing, derive, key_id, keyring

# secrets that belong to no channel
OWN_SPECS = {
    "webhook": CredentialSpec(("url", "secret"), public=("url",)),  # the owner's handoff webhook (each call signed)
    "calendar": CredentialSpec(("feedToken",), generated="feedToken"),  # the bookings feed's capability URL
}
SPECS: dict[str, CredentialSpec] = credential_specs() | OWN_SPECS
PROVIDERS: dict[str, tuple[str, ...]] = {name: spec.fields for name, spec in SPECS.items()}
GENERATED = {name: spec.generated for name, spec in SPECS.items() if spec.generated}
API_KEY_HASH = REST.credentials.hashed["apiKey"]


class CredentialsError(ValueError):
    """Unknown provider or key, or no encryption key configured."""


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(api_key: str) -> tuple[str, str] | None:
    """(businessId, secret) of `<businessId>.<secret>`, split at the last dot (a businessId may
    hold dots, a secret never does); None for a key without both parts."""
    business_id, dot, secret = api_key.rpartition(".")
    return (business_id, secret) if dot and business_id and secret else None


def api_key_secret(business_id: str, api_key: str) -> str:
    """The secret of a key given to `credentials set`: `<businessId>.<secret>`, or a bare secret
    (then the key to send is `<businessId>.<secret>`)."""
    secret = api_key.removeprefix(f"{business_id}.")
    if not secret or "." in secret:
        raise CredentialsError(f"apiKey must be {business_id}.<secret> (a secret without dots)")
    return secret


def mask(value: str) -> str:
    return "****" if len(value) < 8 else f"{value[:2]}…{value[-2:]} ({len(value)} chars)"


def validate(provider: str, values: dict[str, str]) -> None:
    allowed = PROVIDERS.get(provider)
    if allowed is None:
        raise CredentialsError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise CredentialsError(f"{provider} has no key {unknown[0]!r}; keys: {', '.join(allowed)}")


CACHE_TTL_S = 30.0  # how long a read (found or not) is reused
REREAD_AFTER_S = 1.0  # a key that does not match re-reads the business's credentials at most this often


def cache_key(business_id: str, provider: str) -> tuple[str, str]:
    """A cache key of bounded size whatever the caller sent (a long id by its digest)."""
    short = business_id if len(business_id) <= 128 else "#" + hashlib.sha256(business_id.encode("utf-8", "surrogatepass")).hexdigest()
    return short, provider[:64]


def credential_store(ddb: Any, settings: Any, cache_entries: int = 10_000) -> "CredentialStore":
    """The store of the settings' table with all their secret keys (current and previous)."""
    try:
        keys = keyring(settings)
    except SecretKeyMissing as exc:
        raise CredentialsError(str(exc)) from None
    return CredentialStore(ddb, settings.tables.credentials, keys, cache_entries)


class CredentialStore:
    def __init__(self, ddb: Any, table: str, secret_key: str | KeyRing | None, cache_entries: int = 10_000) -> None:
        if not secret_key:
            raise CredentialsError("AGENTSTREAM_SECRET_KEY is not set (a Fernet key: `agentstream credentials keygen`)")
        self._ddb = ddb
        self._table = table
        self._sealer = Sealer(secret_key if isinstance(secret_key, KeyRing) else KeyRing((secret_key,)))
        # bounded in entries and time, unknown businesses included: the ids come from callers
        self._cache: TTLCache[tuple[str, str], tuple[float, dict[str, str]]] = TTLCache(cache_entries, CACHE_TTL_S)

    async def get(self, business_id: str, provider: str, read_since: float | None = None) -> dict[str, str]:
        """The decrypted secrets of one provider ({} when none are set); a read is reused for
        CACHE_TTL_S, or with `read_since` (a `time.monotonic()`) only if made after it."""
        key = cache_key(business_id, provider)
        hit = self._cache.get(key)
        if hit and (read_since is None or hit[0] >= read_since):
            return hit[1]
        resp = await self._ddb.get_item(
            TableName=self._table, Key=to_item({"businessId": business_id, "provider": provider}), ConsistentRead=True
        )
        values = self._sealer.open(from_item(resp["Item"])["secret"], business_id, provider) if "Item" in resp else {}
        self._cache[key] = (time.monotonic(), values)
        return values

    def cached(self) -> int:
        """How many reads are cached."""
        return len(self._cache)

    async def set(self, business_id: str, provider: str, values: dict[str, str]) -> dict[str, str]:
        """Merge new values into a provider's secrets; the REST apiKey is kept as its secret's hash,
        and a replaced widget signingKey as previousSigningKey (it keeps verifying tokens)."""
        validate(provider, values)
        spec = SPECS[provider]
        current = await self.get(business_id, provider)
        for key, stored in spec.hashed.items():  # the REST key: only its secret's hash is kept
            if key in values:
                values = {k: v for k, v in values.items() if k != key} | {
                    stored: hash_api_key(api_key_secret(business_id, values[key]))}
        for key, previous in spec.keep_previous.items():  # a replaced widget signing key keeps verifying
            if current.get(key) and values.get(key, current[key]) != current[key]:
                values = values | {previous: current[key]}
        merged = current | values
        await self._put(business_id, provider, merged)
        return merged

    async def set_state(self, business_id: str, name: str, values: dict[str, str]) -> None:
        """Channel state that is not a vendor secret (e.g. Gmail's last history id), stored the same way."""
        await self._put(business_id, name, values)

    async def _put(self, business_id: str, name: str, values: dict[str, str]) -> None:
        item = {"businessId": business_id, "provider": name, "secret": self._sealer.seal(values, business_id, name),
                "updatedAt": int(time.time())}
        await self._ddb.put_item(TableName=self._table, Item=to_item(item))
        self._cache.pop(cache_key(business_id, name), None)

    async def businesses(self, provider: str) -> list[str]:
        """The businesses that have secrets (or state) stored under `provider` (a scan)."""
        items = await scan_all(self._ddb, TableName=self._table, ProjectionExpression="businessId",
                               FilterExpression="#p = :p", ExpressionAttributeNames={"#p": "provider"},
                               ExpressionAttributeValues=to_item({":p": provider}))
        return sorted(i["businessId"] for i in items)

    async def rotate(self, business_id: str, provider: str) -> dict[str, str]:
        """Replace the secret agentstream generates for a provider; returns the new plain value."""
        key = GENERATED.get(provider)
        if key is None:
            raise CredentialsError(f"{provider} secrets are issued by the vendor; set them with `credentials set`")
        value = secrets.token_urlsafe(32)  # url-safe: never a dot
        if key in SPECS[provider].hashed:  # an API key names its business
            value = f"{business_id}.{value}"
        await self.set(business_id, provider, {key: value})
        return {key: value}

    async def api_key_business(self, api_key: str) -> str | None:
        """The businessId an API key `<businessId>.<secret>` names, if its secret is that business's."""
        parts = split_api_key(api_key)
        if parts is None:
            return None
        given = hash_api_key(parts[1]).encode()
        stored = (await self.get(parts[0], REST.name)).get(API_KEY_HASH, "")
        if not (stored and hmac.compare_digest(stored.encode(), given)):  # rotated since the read? read again
            stored = (await self.get(parts[0], REST.name, time.monotonic() - REREAD_AFTER_S)).get(API_KEY_HASH, "")
        return parts[0] if stored and hmac.compare_digest(stored.encode(), given) else None

    async def widget_keys(self, business_id: str) -> list[str]:
        """The widget signing keys, oldest first (the last one signs); [] when none is set."""
        values = await self.get(business_id, WIDGET.name)
        return [k for k in (values.get(WIDGET.credentials.keep_previous["signingKey"]), values.get("signingKey")) if k]

    async def rekey(self) -> "RekeyReport":
        """Every stored row (secrets and channel state) sealed again under the current key, each
        by a write conditional on the row being unchanged since it was read: readers decrypt
        both forms meanwhile, and a row written concurrently is left as that write made it."""
        report = RekeyReport()
        for item in await scan_all(self._ddb, TableName=self._table, ConsistentRead=True):
            row = item
            business_id, name, sealed = row["businessId"], row["provider"], row.get("secret", "")
            report.rows += 1
            if self._sealer.current(sealed):
                continue
            try:
                values = self._sealer.open(sealed, business_id, name)
            except CredentialsError:
                report.unreadable.append(f"{business_id}/{name}")
                continue
            try:
                await self._ddb.put_item(
                    TableName=self._table, Item=to_item({**row, "secret": self._sealer.seal(values, business_id, name),
                                                         "updatedAt": int(time.time())}),
                    ConditionExpression="#s = :old", ExpressionAttributeNames={"#s": "secret"},
                    ExpressionAttributeValues=to_item({":old": sealed}))
                report.rekeyed += 1
            except Exception as exc:  # noqa: BLE001 - a concurrent write sealed it under the current key already
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            self._cache.pop(cache_key(business_id, name), None)
        return report


@dataclass
class RekeyReport:
    rows: int = 0
    rekeyed: int = 0
    unreadable: list[str] = field(default_factory=list)


SEALED = "v2"  # AES-256-GCM under a derived key, bound to the business and provider
_PURPOSE = "agentstream/credentials"


class Sealer:
    """Credential rows' encryption: `v2:<key id>:<base64url(nonce + AES-GCM ciphertext)>`, the
    associated data naming the business and provider (a row copied to another business or
    provider does not decrypt). The current key seals; any key of the ring opens, and rows of
    the earlier format (Fernet under a secret key itself) still open until `credentials rekey`."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._ids = keys.by_id()

    @staticmethod
    def _aad(business_id: str, provider: str) -> bytes:
        return json.dumps(["agentstream-credentials", business_id, provider]).encode()

    def seal(self, values: dict[str, str], business_id: str, provider: str) -> str:
        secret = self._keys.current
        nonce = os.urandom(12)
        box = AESGCM(derive(secret, _PURPOSE)).encrypt(nonce, json.dumps(values).encode(), self._aad(business_id, provider))
        return f"{SEALED}:{key_id(secret)}:{base64.urlsafe_b64encode(nonce + box).decode()}"

    def current(self, sealed: str) -> bool:
        return sealed.startswith(f"{SEALED}:{key_id(self._keys.current)}:")

    def open(self, sealed: str, business_id: str, provider: str) -> dict[str, str]:
        try:
            if sealed.startswith(f"{SEALED}:"):
                _, kid, body = sealed.split(":", 2)
                raw = base64.urlsafe_b64decode(body)
                secret = self._ids[kid]
                plain = AESGCM(derive(secret, _PURPOSE)).decrypt(raw[:12], raw[12:], self._aad(business_id, provider))
            else:
                plain = MultiFernet([Fernet(s.encode()) for s in self._keys.secrets if _fernet_key(s)]).decrypt(sealed.encode())
            return json.loads(plain)
        except (InvalidToken, InvalidTag, KeyError, ValueError):
            raise CredentialsError(f"stored credentials of {business_id[:64]}/{provider[:32]} cannot be decrypted with "
                                   "AGENTSTREAM_SECRET_KEY or AGENTSTREAM_PREVIOUS_SECRET_KEYS") from None


def _fernet_key(secret: str) -> bool:
    try:
        Fernet(secret.encode())
        return True
    except ValueError:
        return False


def new_secret_key() -> str:
    return Fernet.generate_key().decode()


# ---- widget visitor tokens -------------------------------------------------------------------

REFRESH_GRACE_S = 30 * 24 * 3600  # an expired token can be refreshed for this long
_SALT = "agentstream.widget-token"


def issue_widget_token(keys: str | list[str], business_id: str, user_id: str, ttl_s: int, now: float | None = None,
                       token_id: str | None = None, expires_at: int | None = None) -> tuple[str, int]:
    """A signed, expiring token binding a visitor to one business: (token, expiresAt epoch s).
    Signed with the last of `keys`; with `token_id` it names its visitor record's current token
    (the same id and expiry give the same token)."""
    expires = expires_at if expires_at is not None else int((now or time.time()) + ttl_s)
    claims: dict[str, Any] = {"b": business_id, "u": user_id, "exp": expires}
    if token_id:
        claims["j"] = token_id
    return URLSafeSerializer(keys, salt=_SALT).dumps(claims), expires


def widget_token_id(keys: str | list[str], token: str) -> str | None:
    """The token id a (signature-checked) token carries; None for one issued without a record."""
    try:
        data = URLSafeSerializer(keys, salt=_SALT).loads(token)
    except BadData:
        return None
    value = data.get("j") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _claims(keys: str | list[str], token: str, legacy: bool = False) -> tuple[str, str, int] | None:
    """(businessId, userId, expiresAt) of a token signed by any of `keys`, expired or not; with
    `legacy`, a token of the earlier format too."""
    try:
        data = URLSafeSerializer(keys, salt=_SALT).loads(token)
    except BadData:
        return _legacy_claims(keys, token) if legacy else None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or not all(isinstance(data.get(k), str) for k in "bu"):
        return None
    return data["b"], data["u"], data["exp"]


def verify_widget_token(keys: str | list[str], token: str, business_id: str, user_id: str, now: float | None = None) -> bool:
    """True for an unexpired token of this business and visitor, signed by a current or previous key."""
    claims = _claims(keys, token)
    return claims is not None and claims[:2] == (business_id, user_id) and claims[2] > (now or time.time())


def refreshable_user(keys: str | list[str], token: str, business_id: str, now: float | None = None) -> str | None:
    """The userId of a token of this business that may be exchanged for a new one: signed by a
    current or previous key (or in the pre-itsdangerous format) and expired at most REFRESH_GRACE_S ago."""
    claims = _claims(keys, token, legacy=True)
    if claims is None or claims[0] != business_id or claims[2] + REFRESH_GRACE_S <= (now or time.time()):
        return None
    return claims[1] or None


def _legacy_claims(keys: str | list[str], token: str) -> tuple[str, str, int] | None:
    """Claims of a token in the earlier hand-signed format (`b64(b|u|exp).b64(hmac)`), accepted
    only for a refresh so that visitors from before the upgrade keep their userId."""
    try:
        body_b64, sig_b64 = token.split(".", 1)
        body = base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4))
        sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
        business_id, user_id, expires = body.decode().split("|")
        expires_at = int(expires)
    except ValueError:
        return None
    for key in [keys] if isinstance(keys, str) else keys:
        if hmac.compare_digest(hmac.new(key.encode(), body, hashlib.sha256).digest(), sig):
            return business_id, user_id, expires_at
    return None
