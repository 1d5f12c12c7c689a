"""Twilio SMS and WhatsApp webhooks, checked with twilio's own RequestValidator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from twilio.request_validator import RequestValidator

from agentstream.adapters.channels.errors import BadRequest, BadSignature
from agentstream.adapters.ingest import InboundMessage

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url(public_base_url: str, path: str, query: str = "") -> str:
    """The URL Twilio called (the public address, not the one behind a proxy)."""
    return public_base_url.rstrip("/") + path + (f"?{query}" if query else "")


def verify(url: str, form: Mapping[str, str], signature: str | None, auth_token: str) -> None:
    if not signature or not auth_token or not RequestValidator(auth_token).validate(url, dict(form), signature):
        raise BadSignature("X-Twilio-Signature does not match")


def parse(business_id: str, form: Mapping[str, str], received_at: datetime) -> InboundMessage:
    sid, sender, to = form.get("MessageSid"), form.get("From"), form.get("To")
    if not sid or not sender or not to:
        raise BadRequest("MessageSid, From and To are required")
    whatsapp = sender.startswith("whatsapp:")
    try:
        count = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        raise BadRequest("NumMedia is not a number") from None
    attachments = tuple(
        {"url": form.get(f"MediaUrl{i}"), "contentType": form.get(f"MediaContentType{i}")} for i in range(count)
    )
    return InboundMessage(
        business_id, sender.removeprefix("whatsapp:"), "whatsapp" if whatsapp else "sms", sid, form.get("Body", ""),
        received_at, attachments=attachments, reply_to={"via": "twilio", "from": to, "to": sender},
    )
