"""The vendors' HTTP answers as our errors: 429, 5xx and network errors are worth a retry, a
401 may need a fresh token, any other 4xx will not succeed by retrying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from agentstream.adapters.channels.errors import PermanentError, RetryableError, Unauthorized


def result(resp: httpx.Response, vendor: str) -> dict[str, Any]:
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetryableError(f"{vendor} answered {resp.status_code}")
    if resp.status_code == 401:
        raise Unauthorized(f"{vendor} answered 401")
    if resp.status_code >= 400:
        raise PermanentError(f"{vendor} answered {resp.status_code}: {resp.text[:200]}")
    return resp.json() if resp.content else {}


async def post(http: httpx.AsyncClient, vendor: str, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return result(await http.post(url, **kwargs), vendor)
    except httpx.TransportError as exc:
        raise RetryableError(f"{vendor} unreachable: {type(exc).__name__}") from None


async def post_json(http: httpx.AsyncClient, vendor: str, url: str, body: dict[str, Any],
                    headers: Mapping[str, str]) -> dict[str, Any]:
    return await post(http, vendor, url, json=body, headers=dict(headers))


def need(values: Mapping[str, str], *keys: str) -> None:
    missing = [k for k in keys if not values.get(k)]
    if missing:
        raise PermanentError(f"missing {', '.join(missing)}")


def public_url(public_base_url: str, path: str, query: str = "") -> str:
    """The URL a vendor called (the public address, not the one behind a proxy): signatures cover it."""
    return public_base_url.rstrip("/") + path + (f"?{query}" if query else "")
