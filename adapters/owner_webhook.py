"""The business owner's handoff webhook (`agentstream credentials set B webhook url=… secret=…`).

Each call is a POST of the event's JSON with `X-Agentstream-Timestamp: <unix seconds>` and
`X-Agentstream-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>`;
a receiver recomputes it and refuses old timestamps. A network error, a 429 or a 5xx is retried
with exponential backoff and jitter (agentstream/retry.py, the policy every retrying caller uses);
the outcome of the last call per business is kept beside the business's credentials
(`webhook-status`), where `agentstream status` reads it. The secret and the URL's query never
reach the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.kafka.client import dumps
from agentstream.events import iso, utc_now
from agentstream.retry import RetryPolicy

log = structlog.get_logger(__name__)
STATUS = "webhook-status"  # the credentials item holding the last call's outcome


class RetryableCall(Exception):
    """The receiver answered 429 or 5xx: worth another attempt."""


WEBHOOK_RETRY = RetryPolicy(attempts=5, wait_initial=0.5, wait_max=10.0, wait_jitter=1.0, timeout=60.0)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {"Content-Type": "application/json", "X-Agentstream-Timestamp": timestamp,
            "X-Agentstream-Signature": signature(secret, timestamp, body)}


def _where(url: str) -> str:
    """The URL without its query or credentials, for logs and status."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


class OwnerWebhook:
    """Calls a business's webhook with an event, retried; records the outcome for `status`."""

    def __init__(self, credentials: CredentialStore, http: httpx.AsyncClient, retry: RetryPolicy = WEBHOOK_RETRY) -> None:
        self._credentials = credentials
        self._http = http
        self._retry = retry

    async def notify(self, business_id: str, payload: dict[str, Any]) -> bool | None:
        """Call the business's webhook (None: it has none; True: delivered; False: failed for good)."""
        config = await self._credentials.get(business_id, "webhook")
        if not config.get("url") or not config.get("secret"):
            return None
        body = dumps(payload)
        attempts = 0
        try:
            async for attempt in self._retry.attempts_of((httpx.TransportError, RetryableCall)):
                with attempt:
                    attempts += 1
                    await self._call(config["url"], config["secret"], body)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("webhook.failed", businessId=business_id, url=_where(config["url"]), attempts=attempts, error=error)
            await self._record(business_id, config["url"], False, attempts, error)
            return False
        await self._record(business_id, config["url"], True, attempts, "")
        return True

    async def _call(self, url: str, secret: str, body: bytes) -> None:
        response = await self._http.post(url, content=body, headers=signed_headers(secret, body))
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableCall(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermissionError(f"HTTP {response.status_code} (not retried)")

    async def _record(self, business_id: str, url: str, ok: bool, attempts: int, error: str) -> None:
        previous = await self._credentials.get(business_id, STATUS)
        failures = 0 if ok else int(previous.get("failures", "0")) + 1
        at = iso(utc_now())
        state = {"url": _where(url), "lastCallAt": at, "attempts": str(attempts), "failures": str(failures),
                 "lastError": error if not ok else previous.get("lastError", ""),
                 "lastFailureAt": at if not ok else previous.get("lastFailureAt", ""),
                 "lastSuccessAt": at if ok else previous.get("lastSuccessAt", "")}
        await self._credentials.set_state(business_id, STATUS, state)


async def webhook_statuses(credentials: CredentialStore) -> list[dict[str, str]]:
    """Each business's last webhook outcome (for `agentstream status`)."""
    return [{"business": b, **await credentials.get(b, STATUS)} for b in await credentials.businesses(STATUS)]
