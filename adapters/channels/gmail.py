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
from starlette.responses import JSONResponse

from agentstream.adapters.channels.base import (
    Setting, CredentialSpec, EventChannel, Outgoing, Provider, Received, SendCall, Text, Unsupported, Webhook, WebhookCall,
)
from agentstream.adapters.channels.errors import BadRequest, BadSignature, ChannelError, PermanentError, RetryableError
from agentstream.adapters.channels.gmail_auth import GmailAuth
from agentstream.adapters.channels.google_oidc import CERTS_URL as GOOGLE_CERTS_URL, verify_push
from agentstream.adapters.channels.http import need, post_json, result
from agentstream.adapters.channels.media_kinds import first_read_kind, kind_of_type
from agentstream.adapters.ingest import InboundMessage
from agentstream.projections.facts import SENDER_VERIFIED

log = structlog.get_logger(__name__)
GMAIL = EventChannel("gmail", "Gmail", max_text=50_000, identity="email")
BASE_URL = Setting("GMAIL_API_BASE_URL", "https://gmail.googleapis.com")
# a push subscription's OIDC token: checked when the audience is set (the subscription's --push-auth-token-audience)
PUSH_AUDIENCE = Setting("GMAIL_PUSH_AUDIENCE", "")
PUSH_SERVICE_ACCOUNT = Setting("GMAIL_PUSH_SERVICE_ACCOUNT", "")
CERTS_URL = Setting("GOOGLE_CERTS_URL", GOOGLE_CERTS_URL)

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
    from bs4 import BeautifulSoup  # here: half a second to import, for the processes that read Gmail's HTML

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
    """Headers by lower-case name; of a repeated one the first (topmost: added last, by Gmail)."""
    found: dict[str, str] = {}
    for h in payload.get("headers", []):
        found.setdefault(h["name"].lower(), h["value"])
    return found


def _results(header: str) -> dict[str, str]:
    """`method=result` and `ptype.property=value` pairs of an Authentication-Results header."""
    return {k.lower(): v.strip(";").lower() for k, v in re.findall(r"([\w.-]+)=([^\s;()]+)", header)}


def _aligned(domain: str, sender_domain: str) -> bool:
    domain = domain.rpartition("@")[2]
    return bool(domain) and (domain == sender_domain or sender_domain.endswith("." + domain) or domain.endswith("." + sender_domain))


def sender_authenticated(headers: dict[str, str], sender: str) -> bool:
    """Whether Gmail found the From address authentic: DMARC passed, or SPF and DKIM both passed
    for domains aligned with the From domain."""
    results = _results(headers.get("authentication-results", ""))
    if results.get("dmarc") == "pass":
        return True
    domain = sender.rpartition("@")[2]
    spf = results.get("spf") == "pass" and _aligned(results.get("smtp.mailfrom", ""), domain)
    dkim = results.get("dkim") == "pass" and _aligned(results.get("header.d", results.get("header.i", "")), domain)
    return spf and dkim


def message_to_inbound(business_id: str, msg: dict[str, Any]) -> InboundMessage | None:
    """A customer's e-mail as a message; None for what the business sent itself and for spam.
    `senderVerified` says whether the From address passed DMARC (only then is it the customer's
    e-mail fact)."""
    labels = msg.get("labelIds", [])
    if "SENT" in labels or "SPAM" in labels:
        return None
    payload = msg.get("payload", {})
    headers = _headers(payload)
    sender = parseaddr(headers.get("from", ""))[1].lower()
    if not sender:
        return None
    when = datetime.fromtimestamp(int(msg.get("internalDate", "0")) / 1000, timezone.utc)
    reply_to = {"threadId": str(msg.get("threadId", "")), "messageId": headers.get("message-id", ""),
                "subject": headers.get("subject", ""), "to": sender,
                SENDER_VERIFIED: "true" if sender_authenticated(headers, sender) else "false"}
    text, files = extract_text(payload), attached_files(payload, str(msg["id"]))
    kind = first_read_kind(files) or ("text" if text.strip() or not files else "unsupported")
    return InboundMessage(business_id, sender, "gmail", str(msg["id"]), text, when, reply_to=reply_to,
                          attachments=files, kind=kind)


def _embedded(part: dict[str, Any]) -> bool:
    """An image the e-mail's HTML shows in place (a signature's logo): inline, with a Content-ID."""
    headers = _headers(part)
    return headers.get("content-disposition", "").lower().startswith("inline") and bool(headers.get("content-id"))


def attached_files(payload: dict[str, Any], message_id: str) -> tuple[dict[str, Any], ...]:
    """The message's attachments (by Gmail's message and attachment ids), each of the kind its
    type makes: photos, audio and documents are fetched and read; the rest is recorded only."""
    return tuple({"id": p["body"]["attachmentId"], "messageId": message_id, "name": p.get("filename") or None,
                  "contentType": p.get("mimeType"), "size": p["body"].get("size"), "source": "gmail",
                  "kind": kind_of_type(p.get("mimeType")) or ("image" if p.get("mimeType") == "image/webp" else "attachment")}
                 for p in _parts(payload)
                 if p.get("filename") and (p.get("body") or {}).get("attachmentId") and not _embedded(p))


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

    async def history_since(self, history_id: int) -> tuple[list[str], int]:
        """Ids of messages added after a history id (all pages), and the mailbox's history id
        they go up to (as Gmail says; never a pushed one)."""
        ids: list[str] = []
        params: dict[str, Any] = {"startHistoryId": history_id, "historyTypes": "messageAdded"}
        latest = history_id
        while True:
            data = await self._call("GET", "/history", params=dict(params))
            latest = max(latest, int(data.get("historyId", latest)))
            for record in data.get("history", []):
                ids += [m["message"]["id"] for m in record.get("messagesAdded", []) if m["message"]["id"] not in ids]
            if not data.get("nextPageToken"):
                return ids, latest
            params["pageToken"] = data["nextPageToken"]

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/messages/{message_id}", params={"format": "full"})

    async def watch(self, topic: str) -> dict[str, Any]:
        """Start or renew push notifications to a Pub/Sub topic: {historyId, expiration (epoch ms)}."""
        return await self._call("POST", "/watch", json={"topicName": topic})


# ---- the webhook: a push names a history id; the new messages are fetched ------------------------

async def _verify(call: WebhookCall, deps: Any) -> None:
    """The business's push token in the URL, then, where an audience is set, the push's OIDC token."""
    check_push_token(call.query.get("token"), call.secrets.get("pushToken", ""))
    audience = PUSH_AUDIENCE.resolve(deps.settings)
    if audience:
        await verify_push(deps.http, call.headers.get("authorization"), audience,
                          PUSH_SERVICE_ACCOUNT.resolve(deps.settings), CERTS_URL.resolve(deps.settings))


async def _receive(call: WebhookCall, deps: Any) -> Received:
    """The messages added since the stored history id (the first push starts from its own); the
    stored id then moves to what Gmail's history says, however large a pushed id is."""
    _, pushed = parse_push(call.body, call.query.get("token"), call.secrets.get("pushToken", ""))
    client = GmailClient(deps.http, BASE_URL.resolve(deps.settings), deps.gmail, call.business_id)
    state = await deps.credentials.get(call.business_id, "gmail-state")
    start = int(state.get("historyId", pushed))
    try:
        ids, reached = await client.history_since(start)
        found = [message_to_inbound(call.business_id, await client.get_message(m)) for m in ids]
    except (RetryableError, PermanentError) as exc:
        log.warning("gmail.fetch_failed", businessId=call.business_id, error=str(exc)[:200])
        raise Unavailable("Gmail API unavailable; Pub/Sub will retry") from None
    messages = [m for m in found if m is not None]
    return Received(messages, response=JSONResponse({"received": len(messages)}), after=lambda: deps.credentials.set_state(
        call.business_id, "gmail-state", {"historyId": str(reached)}))


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
