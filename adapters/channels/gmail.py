"""Gmail: authenticated Pub/Sub pushes, new messages through the Gmail API, text without quotes
(HTML made text by BeautifulSoup), replies sent as e-mails in the customer's thread."""

from __future__ import annotations

import base64
import hmac
import json
import re
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import httpx
import structlog
from bs4 import BeautifulSoup
from starlette.responses import JSONResponse

from agentstream.adapters.channels.base import (
    BaseUrl, CredentialSpec, EventChannel, Outgoing, Provider, Received, SendCall, Text, Unsupported, Webhook, WebhookCall,
)
from agentstream.adapters.channels.errors import BadRequest, BadSignature, ChannelError, PermanentError, RetryableError
from agentstream.adapters.channels.gmail_auth import GmailAuth
from agentstream.adapters.channels.http import need, post_json, result
from agentstream.adapters.ingest import InboundMessage

log = structlog.get_logger(__name__)
GMAIL = EventChannel("gmail", "Gmail", max_text=50_000, identity="email")
BASE_URL = BaseUrl("GMAIL_API_BASE_URL", "https://gmail.googleapis.com")

QUOTE_HEADERS = (
    re.compile(r"^On .+ wrote:\s*$"),
    re.compile(r"^În .+ a scris:\s*$"),
    re.compile(r"^Pe .+ a scris:\s*$"),
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}$", re.IGNORECASE),
)


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class Unavailable(ChannelError):
    status = 503


def check_push_token(token: str | None, expected_token: str) -> None:
    """The push's shared token (in its URL), compared as bytes."""
    if not token or not expected_token or not hmac.compare_digest(token.encode(), expected_token.encode()):
        raise BadSignature("push token does not match")


def parse_push(raw_body: bytes, token: str | None, expected_token: str) -> tuple[str, int]:
    """(emailAddress, historyId) of a Pub/Sub push authenticated by its shared token."""
    check_push_token(token, expected_token)
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


BLOCKS = ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol")


def html_to_text(markup: str) -> str:
    """The visible text of an HTML body: no style, script or head, no quoted history, a line per block."""
    soup = BeautifulSoup(markup, "html.parser")
    for hidden in soup(["style", "script", "head", "title"]):
        hidden.decompose()
    for quote in soup.select(".gmail_quote, blockquote"):
        quote.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(BLOCKS):
        block.append("\n")
    lines = (" ".join(line.replace("\xa0", " ").split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line)


def _parts(payload: dict[str, Any]) -> list[dict[str, Any]]:
    found = [payload]
    for part in payload.get("parts", []) or []:
        found += _parts(part)
    return found


def extract_text(payload: dict[str, Any]) -> str:
    """The message's text: text/plain if present, else text/html made plain; quotes stripped."""
    parts = [p for p in _parts(payload) if p.get("body", {}).get("data")]
    for mime, convert in (("text/plain", lambda t: t), ("text/html", html_to_text)):
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
                return result(await self._http.request(method, self._base + path, headers=headers, **kwargs), "Gmail API")
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


# ---- the webhook: a push names a history id; the new messages are fetched ------------------------

def _verify(call: WebhookCall) -> None:
    check_push_token(call.query.get("token"), call.secrets.get("pushToken", ""))


async def _receive(call: WebhookCall, deps: Any) -> Received:
    _, history_id = parse_push(call.body, call.query.get("token"), call.secrets.get("pushToken", ""))
    client = GmailClient(deps.http, BASE_URL.resolve(deps.settings), deps.gmail, call.business_id)
    state = await deps.credentials.get(call.business_id, "gmail-state")
    start = int(state.get("historyId", history_id))
    try:
        found = [message_to_inbound(call.business_id, await client.get_message(m)) for m in await client.history_since(start)]
    except (RetryableError, PermanentError) as exc:
        log.warning("gmail.fetch_failed", businessId=call.business_id, error=str(exc)[:200])
        raise Unavailable("Gmail API unavailable; Pub/Sub will retry") from None
    messages = [m for m in found if m is not None]
    return Received(messages, response=JSONResponse({"received": len(messages)}), after=lambda: deps.credentials.set_state(
        call.business_id, "gmail-state", {"historyId": str(max(start, history_id))}))


# ---- sending -------------------------------------------------------------------------------------

def _mime(to: dict[str, str], text: str) -> str:
    mail = EmailMessage()
    mail["To"] = to["to"]
    subject = to.get("subject", "")
    mail["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    if to.get("messageId"):
        mail["In-Reply-To"] = to["messageId"]
        mail["References"] = to["messageId"]
    mail.set_content(text, charset="utf-8")
    return base64.urlsafe_b64encode(mail.as_bytes()).decode()


async def send(call: SendCall, message: Outgoing) -> str | None:
    """An e-mail in the customer's thread; an hour-long token is refreshed on a 401, then sent again."""
    if not isinstance(message, Text):
        raise Unsupported(f"Gmail cannot send {type(message).__name__}")
    need(call.to, "to")
    body = {"raw": _mime(dict(call.to), message.text), "threadId": call.to.get("threadId", "")}
    url = f"{call.base.rstrip('/')}/gmail/v1/users/me/messages/send"

    async def with_token(token: str) -> str:
        data = await post_json(call.deps.http, "Gmail", url, body, {"Authorization": f"Bearer {token}"})
        return str(data["id"])

    return await call.deps.gmail.call(call.business_id, with_token)


PROVIDER = Provider(
    name="gmail",
    channels=(GMAIL,),
    credentials=CredentialSpec(("pushToken", "accessToken", "refreshToken", "clientId", "clientSecret", "watchTopic",
                                "tokenExpiry"), generated="pushToken", public=("watchTopic", "tokenExpiry")),
    base_url=BASE_URL,
    webhooks=(Webhook("POST", "/webhooks/gmail/{businessId}", _verify, _receive,
                      "push token missing or not valid for this business"),),
    send=send,
)
