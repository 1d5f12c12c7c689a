"""The secret keys and the keys derived from them.

AGENTSTREAM_SECRET_KEY is the current key; AGENTSTREAM_PREVIOUS_SECRET_KEYS (comma-separated)
are older ones that still decrypt and verify, so a key can be replaced with no downtime: add the
new one, keep the old one as previous, run `agentstream credentials rekey`, then drop it. Each use
(credential encryption, inbox cookies, erasure receipts, snapshots) gets its own key, derived
with HKDF-SHA256 from a secret and a purpose label, so no two uses ever share key material.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretKeyMissing(ValueError):
    """A process that signs or encrypts was started without AGENTSTREAM_SECRET_KEY."""


@lru_cache(maxsize=256)
def derive(secret: str, info: str, length: int = 32) -> bytes:
    """The key of one purpose (`info`) under one secret: HKDF-SHA256, no salt."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(secret.encode())


def key_id(secret: str) -> str:
    """A short public name of a secret (reveals nothing of it)."""
    return hmac.new(derive(secret, "agentstream/key-id"), b"agentstream", hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """The secrets in force, newest first: the first encrypts and signs, all decrypt and verify."""

    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.secrets:
            raise SecretKeyMissing("AGENTSTREAM_SECRET_KEY is not set (a key: `agentstream credentials keygen`)")

    @property
    def current(self) -> str:
        return self.secrets[0]

    def derived(self, info: str) -> list[bytes]:
        """The key of `info` under every secret, newest first."""
        return [derive(s, info) for s in self.secrets]

    def by_id(self) -> dict[str, str]:
        return {key_id(s): s for s in self.secrets}


def keyring(settings: Any, why: str = "") -> KeyRing:
    """The settings' key ring; SecretKeyMissing (one line saying `why` it is needed) without a key."""
    current = getattr(settings, "credentials_key", None)
    previous = [k.strip() for k in (getattr(settings, "previous_secret_keys", "") or "").split(",") if k.strip()]
    if not current:
        raise SecretKeyMissing("AGENTSTREAM_SECRET_KEY is not set" + (f": {why}" if why else "")
                               + " (a key: `agentstream credentials keygen`)")
    return KeyRing(tuple(dict.fromkeys([current, *previous])))
