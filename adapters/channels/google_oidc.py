"""Pub/Sub push authentication: the `Authorization: Bearer` OIDC token Google signs for a push
subscription, checked with google-auth against Google's public certificates (cached an hour):
signature, expiry, audience, issuer and the subscription's service account."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from google.auth import exceptions, jwt

from agentstream.adapters.channels.errors import BadSignature

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
CERTS_TTL_S = 3600.0


@dataclass
class CertCache:
    """Google's signing certificates by URL, fetched again after `ttl_s` or for an unknown key id."""

    ttl_s: float = CERTS_TTL_S
    _certs: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)

    async def get(self, http: httpx.AsyncClient, url: str, fresh: bool = False) -> dict[str, str]:
        hit = self._certs.get(url)
        if hit and hit[0] > time.monotonic() and not fresh:
            return hit[1]
        try:
            resp = await http.get(url, timeout=10)
            resp.raise_for_status()
            certs = {str(k): str(v) for k, v in resp.json().items()}
        except (httpx.HTTPError, ValueError, AttributeError):
            raise BadSignature("Google's signing certificates could not be fetched") from None
        self._certs[url] = (time.monotonic() + self.ttl_s, certs)
        return certs


CERTS = CertCache()


def _claims(token: str, certs: dict[str, str], audience: str) -> dict[str, Any]:
    try:
        return dict(jwt.decode(token, certs=certs, audience=audience, clock_skew_in_seconds=10))
    except (ValueError, exceptions.GoogleAuthError) as exc:
        raise BadSignature(f"push token refused: {type(exc).__name__}") from None


async def verify_push(http: httpx.AsyncClient, authorization: str | None, audience: str, service_account: str,
                      certs_url: str = CERTS_URL) -> None:
    """Raise BadSignature unless `authorization` holds a token Google signed for this audience,
    on behalf of `service_account`, with a verified e-mail."""
    if not authorization or not authorization.startswith("Bearer "):
        raise BadSignature("missing OIDC token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        kid = str(jwt.decode_header(token).get("kid", ""))
    except (ValueError, exceptions.GoogleAuthError):
        raise BadSignature("malformed OIDC token") from None
    certs = await CERTS.get(http, certs_url)
    if kid not in certs:  # Google rotated its keys since the last fetch
        certs = await CERTS.get(http, certs_url, fresh=True)
    claims = _claims(token, certs, audience)
    if claims.get("iss") not in ISSUERS:
        raise BadSignature("OIDC token not issued by Google")
    if claims.get("email") != service_account or not claims.get("email_verified"):
        raise BadSignature("OIDC token of another service account")
