"""Gmail: authenticated Pub/Sub pushes, new messages through the Gmail API, text without quotes."""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
from datetime import datetime, timezone
from email.utils import parseaddr
from typing import Any

import httpx

from agentstream.adapters.channels.errors import BadRequest, BadSignature, PermanentError, RetryableError, Unauthorized
from agentstream.adapters.channels.gmail_auth import GmailAuth
from agentstream.adapters.ingest import InboundMessage

QUOTE_HEADERS = (
    re.compile(r"^On .+ wrote:\s*$"),
    re.compile(r"^În .+ a scris:\s*$"),
    re.compile(r"^Pe .+ a scris:\s*$"),
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}$", re.IGNORECASE),
)


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def parse_push(raw_body: bytes, token: str | None, expected_token: str) -> tuple[str, int]:
    """(emailAddress, historyId) of a Pub/Sub push authenticated by its shared token."""
    if not token or not expected_token or not hmac.compare_digest(token, expected_token):
        raise BadSignature("push token does not match")
    try:
        data = json.loads(_b64(json.loads(raw_body)["message"]["data"]))
        return str(data["emailAddress"]), int(data["historyId"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"not a Pub/Sub push body: {type(exc).__name__}") from None


def strip_quotes(text: str) -> str:
    """The new part of a reply: everything before the quoted history."""
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">") or any(p.match(line.strip()) for p in QUOTE_HEADERS):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _html_to_text(markup: str) -> str:
    markup = re.sub(r'<div class="gmail_quote.*', "", markup, flags=re.DOTALL | re.IGNORECASE)
    markup = re.sub(r"<(br|/p|/div)\s*/?>", "\n", markup, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _parts(payload: dict[str, Any]) -> list[dict[str, Any]]:
    found = [payload]
    for part in payload.get("parts", []) or []:
        found += _parts(part)
    return found


def extract_text(payload: dict[str, Any]) -> str:
    """The message's text: text/plain if present, else text/html made plain; quotes stripped."""
    parts = [p for p in _parts(payload) if p.get("body", {}).get("data")]
    for mime, convert in (("text/plain", lambda t: t), ("text/html", _html_to_text)):
        for part in parts:
            if part.get("mimeType", "").startswith(mime):
                return strip_quotes(convert(_b64(part["body"]["data"]).decode("utf-8", "replace")))
    return ""


def _headers(payload: dict[str, Any]) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in payload.get("headers", [])}


def message_to_inbound(business_id: str, msg: dict[str, Any]) -> InboundMessage | None:
    """A customer's e-mail as a message; None for what the business sent itself."""
    if "SENT" in msg.get("labelIds", []):
        return None
    payload = msg.get("payload", {})
    headers = _headers(payload)
    sender = parseaddr(headers.get("from", ""))[1].lower()
    if not sender:
        return None
    when = datetime.fromtimestamp(int(msg.get("internalDate", "0")) / 1000, timezone.utc)
    reply_to = {"threadId": str(msg.get("threadId", "")), "messageId": headers.get("message-id", ""),
                "subject": headers.get("subject", ""), "to": sender}
    return InboundMessage(business_id, sender, "gmail", str(msg["id"]), extract_text(payload), when, reply_to=reply_to)


def _check(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetryableError(f"Gmail API answered {resp.status_code}")
    if resp.status_code == 401:
        raise Unauthorized("Gmail API answered 401")
    if resp.status_code >= 400:
        raise PermanentError(f"Gmail API answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


class GmailClient:
    """One business's mailbox through the Gmail API, with its token refreshed as needed."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, auth: GmailAuth, business_id: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + "/gmail/v1/users/me"
        self._auth = auth
        self._business = business_id

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async def request(token: str) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {token}"}
            try:
                return _check(await self._http.request(method, self._base + path, headers=headers, **kwargs))
            except httpx.TransportError as exc:
                raise RetryableError(f"Gmail API unreachable: {type(exc).__name__}") from None

        return await self._auth.call(self._business, request)

    async def history_since(self, history_id: int) -> list[str]:
        """Ids of messages added after a history id (all pages)."""
        ids: list[str] = []
        params: dict[str, Any] = {"startHistoryId": history_id, "historyTypes": "messageAdded"}
        while True:
            data = await self._call("GET", "/history", params=dict(params))
            for record in data.get("history", []):
                ids += [m["message"]["id"] for m in record.get("messagesAdded", []) if m["message"]["id"] not in ids]
            if not data.get("nextPageToken"):
                return ids
            params["pageToken"] = data["nextPageToken"]

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/messages/{message_id}", params={"format": "full"})

    async def watch(self, topic: str) -> dict[str, Any]:
        """Start or renew push notifications to a Pub/Sub topic: {historyId, expiration (epoch ms)}."""
        return await self._call("POST", "/watch", json={"topicName": topic})
