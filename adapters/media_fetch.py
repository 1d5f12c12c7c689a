"""Fetching a customer's file from the vendor that holds it: Meta (the Graph API's media URL,
which expires within minutes, with the business's access token), a plain URL (Messenger and
Instagram), Twilio (`MediaUrl`, with the account's basic auth), Telegram (`getFile`) and Gmail
(an attachment by its message's and its own id, with the mailbox's access token).

The download stops as soon as it passes the kind's size limit. What may pass on another try (a
404 from a vendor still settling, 408, 429, 5xx, a timeout, a dropped connection) is `Retryable`;
what will not is `FetchFailed`; a file over the limit is `TooLarge`. No error names a URL (a
Telegram file URL holds the bot's token)."""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({404, 408, 425, 429, 500, 502, 503, 504})
PROVIDER_OF = {"meta": "meta", "twilio": "twilio", "telegram": "telegram", "gmail": "gmail", "url": None}


class FetchFailed(Exception):
    """The file cannot be fetched, and trying again would not help."""


class Retryable(FetchFailed):
    """The file could not be fetched this time."""


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Source:
    """Where one file is: the attachment as the log holds it, the provider's credentials and API base."""

    attachment: Mapping[str, Any]
    creds: Mapping[str, str]
    base: str


def _check(response: httpx.Response, vendor: str) -> None:
    if response.status_code in RETRY_STATUSES:
        raise Retryable(f"{vendor} answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise FetchFailed(f"{vendor} answered HTTP {response.status_code}")


async def _download(http: httpx.AsyncClient, vendor: str, url: str, limit: int, **kwargs: Any) -> Fetched:
    """The body of `url`, stopped as soon as it passes `limit` bytes."""
    async with http.stream("GET", url, follow_redirects=True, **kwargs) as response:
        _check(response, vendor)
        declared = int(response.headers.get("content-length") or 0)
        if declared > limit:
            raise TooLarge(declared)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise TooLarge(size)
            chunks.append(chunk)
    return Fetched(b"".join(chunks), response.headers.get("content-type", "application/octet-stream"))


async def _json(http: httpx.AsyncClient, vendor: str, url: str, **kwargs: Any) -> dict[str, Any]:
    response = await http.get(url, **kwargs)
    _check(response, vendor)
    try:
        return dict(response.json())
    except ValueError:
        raise Retryable(f"{vendor} answered with a body that is not JSON") from None


async def _meta(http: httpx.AsyncClient, source: Source, limit: int) -> Fetched:
    headers = {"Authorization": f"Bearer {source.creds.get('accessToken', '')}"}
    info = await _json(http, "Meta", f"{source.base.rstrip('/')}/{source.attachment['id']}", headers=headers)
    if int(info.get("file_size") or 0) > limit:
        raise TooLarge(int(info["file_size"]))
    if not info.get("url"):
        raise FetchFailed("Meta named no URL for the media")
    fetched = await _download(http, "Meta", str(info["url"]), limit, headers=headers)
    return Fetched(fetched.data, str(info.get("mime_type") or fetched.content_type))


async def _telegram(http: httpx.AsyncClient, source: Source, limit: int) -> Fetched:
    api = f"{source.base.rstrip('/')}/bot{source.creds.get('botToken', '')}"
    found = await _json(http, "Telegram", f"{api}/getFile", params={"file_id": source.attachment["fileId"]})
    path = (found.get("result") or {}).get("file_path")
    if not path:
        raise FetchFailed("Telegram named no file path")
    file_url = f"{source.base.rstrip('/')}/file/bot{source.creds.get('botToken', '')}/{path}"
    fetched = await _download(http, "Telegram", file_url, limit)
    served = fetched.content_type if not fetched.content_type.startswith("application/octet-stream") else None
    guessed = mimetypes.guess_type(str(path))[0]  # Telegram's file server may name no type: the path's extension does
    return Fetched(fetched.data, str(source.attachment.get("contentType") or served or guessed or fetched.content_type))


async def _gmail(http: httpx.AsyncClient, source: Source, limit: int) -> Fetched:
    """users.messages.attachments.get: the file base64url-encoded in a JSON body (its download
    stopped once that body passes what `limit` bytes encode to)."""
    a = source.attachment
    url = f"{source.base.rstrip('/')}/gmail/v1/users/me/messages/{a['messageId']}/attachments/{a['id']}"
    headers = {"Authorization": f"Bearer {source.creds.get('accessToken', '')}"}
    try:
        body = await _download(http, "Gmail", url, limit * 4 // 3 + 4096, headers=headers)
    except TooLarge as exc:
        raise TooLarge(exc.size * 3 // 4) from None
    try:
        data = str(json.loads(body.data)["data"])
        decoded = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (ValueError, KeyError, TypeError):
        raise Retryable("Gmail answered with a body that is not an attachment") from None
    if len(decoded) > limit:
        raise TooLarge(len(decoded))
    return Fetched(decoded, str(a.get("contentType") or "application/octet-stream"))


async def gmail_creds(auth: Any, business_id: str) -> Mapping[str, str]:
    """A business's gmail credentials with an access token that is not about to expire (refreshed
    and stored by `auth`, the process's GmailAuth, if it is)."""
    from agentstream.adapters.channels.errors import PermanentError, RetryableError

    try:
        return await auth.usable(business_id)
    except RetryableError as exc:
        raise Retryable(str(exc)) from None
    except PermanentError as exc:
        raise FetchFailed(str(exc)) from None


async def fetch(http: httpx.AsyncClient, source: Source, limit: int) -> Fetched:
    """The file `source` names (TooLarge, Retryable or FetchFailed otherwise)."""
    kind = source.attachment.get("source")
    try:
        if kind == "meta":
            return await _meta(http, source, limit)
        if kind == "telegram":
            return await _telegram(http, source, limit)
        if kind == "gmail":
            return await _gmail(http, source, limit)
        url = str(source.attachment.get("url") or "")
        if not url.startswith(("https://", "http://")):
            raise FetchFailed("the attachment names no URL to fetch")
        if kind == "twilio":
            auth = (source.creds.get("accountSid", ""), source.creds.get("authToken", ""))
            fetched = await _download(http, "Twilio", url, limit, auth=auth)
            return Fetched(fetched.data, str(source.attachment.get("contentType") or fetched.content_type))
        return await _download(http, "the vendor", url, limit)
    except httpx.TimeoutException:
        raise Retryable("the vendor did not answer in time") from None
    except httpx.TransportError as exc:
        raise Retryable(f"the connection failed ({type(exc).__name__})") from None
