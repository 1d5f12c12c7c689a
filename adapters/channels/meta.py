"""Meta webhooks: WhatsApp Cloud API, Messenger and Instagram (verify, sign-check, parse)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agentstream.adapters.channels.errors import BadRequest, BadSignature
from agentstream.adapters.ingest import InboundMessage

OBJECTS = {"whatsapp_business_account": "whatsapp", "page": "messenger", "instagram": "instagram"}
MEDIA = ("image", "audio", "video", "document", "sticker")


@dataclass(frozen=True)
class StatusUpdate:
    """What Meta says about a message we sent."""

    user_id: str
    external_id: str
    status: str
    error: str | None = None


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str:
    """The hub.challenge handshake: the challenge, if the token matches."""
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not verify_token or not hmac.compare_digest(token, verify_token):
        raise BadSignature("verify token does not match")
    return params.get("hub.challenge", "")


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> None:
    """X-Hub-Signature-256: HMAC-SHA256 of the raw body with the app secret, constant-time."""
    if not header or not header.startswith("sha256=") or not app_secret:
        raise BadSignature("missing X-Hub-Signature-256")
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header[7:], expected):
        raise BadSignature("X-Hub-Signature-256 does not match")


def _when(value: Any, millis: bool) -> datetime:
    try:
        seconds = float(value) / (1000 if millis else 1)
    except (TypeError, ValueError):
        raise BadRequest("timestamp missing or not a number") from None
    return datetime.fromtimestamp(seconds, timezone.utc)


def _whatsapp(business_id: str, value: dict[str, Any]) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    phone_id = str(value.get("metadata", {}).get("phone_number_id", ""))
    messages = []
    for m in value.get("messages", []):
        kind = m.get("type", "text")
        media = m.get(kind, {}) if kind in MEDIA else {}
        content = m.get("text", {}).get("body", "") if kind == "text" else media.get("caption", "")
        attachments = ({"id": media.get("id"), "contentType": media.get("mime_type"), "kind": kind},) if media else ()
        messages.append(InboundMessage(
            business_id, str(m["from"]), "whatsapp", str(m["id"]), content, _when(m.get("timestamp"), False),
            attachments=attachments, reply_to={"phone_number_id": phone_id, "to": str(m["from"])},
        ))
    statuses = [
        StatusUpdate(str(s.get("recipient_id", "")), str(s["id"]), str(s.get("status", "")),
                     (s.get("errors") or [{}])[0].get("title") if s.get("status") == "failed" else None)
        for s in value.get("statuses", [])
    ]
    return messages, statuses


def _messaging(business_id: str, channel: str, entry: dict[str, Any]) -> list[InboundMessage]:
    messages = []
    for item in entry.get("messaging", []):
        message = item.get("message")
        if not message or message.get("is_echo"):
            continue
        attachments = tuple({"url": a.get("payload", {}).get("url"), "kind": a.get("type")} for a in message.get("attachments", []))
        sender, page = str(item["sender"]["id"]), str(item["recipient"]["id"])
        messages.append(InboundMessage(
            business_id, sender, channel, str(message["mid"]), message.get("text", ""), _when(item.get("timestamp"), True),
            attachments=attachments, reply_to={"page_id": page, "to": sender},
        ))
    return messages


def parse(business_id: str, raw_body: bytes) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    """Every customer message and delivery status in one webhook call."""
    try:
        body = json.loads(raw_body)
        channel = OBJECTS[body["object"]]
        messages: list[InboundMessage] = []
        statuses: list[StatusUpdate] = []
        for entry in body["entry"]:
            if channel == "whatsapp":
                for change in entry.get("changes", []):
                    got, status = _whatsapp(business_id, change["value"])
                    messages += got
                    statuses += status
            else:
                messages += _messaging(business_id, channel, entry)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"not a Meta webhook body: {type(exc).__name__} {exc}") from None
    return messages, statuses
