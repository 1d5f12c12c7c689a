"""Twilio: SMS and WhatsApp (webhooks and status callbacks checked with twilio's own
RequestValidator; text, media and WhatsApp content templates sent through the Messages API)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl
from dataclasses import replace
from datetime import datetime
from typing import Any

from starlette.responses import Response
from twilio.request_validator import RequestValidator

from agentstream.adapters.channels.base import (
    Setting, CredentialSpec, EventChannel, Media, Outgoing, Provider, Received, SendCall, StatusUpdate, Template, Text,
    Unsupported, Webhook, WebhookCall,
)
from agentstream.adapters.channels.errors import BadRequest, BadSignature
from agentstream.adapters.channels.http import need, post, public_url
from agentstream.adapters.channels.media_kinds import first_read_kind, kind_of_type
from agentstream.adapters.channels.meta import WHATSAPP as META_WHATSAPP
from agentstream.adapters.ingest import InboundMessage
from agentstream.events import utc_now

SMS = EventChannel("sms", "SMS", max_text=1600, identity="phone", can=frozenset({"text", "image"}))
WHATSAPP = replace(META_WHATSAPP, can=frozenset({"text", "template", "image", "audio", "document", "video"}))
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
STATUSES = {"delivered": "delivered", "read": "read", "failed": "failed", "undelivered": "failed"}


def verify(url: str, form: Mapping[str, str], signature: str | None, auth_token: str) -> None:
    if not signature or not auth_token or not RequestValidator(auth_token).validate(url, dict(form), signature):
        raise BadSignature("X-Twilio-Signature does not match")


def _kind(form: Mapping[str, str], attachments: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    body = form.get("Body", "")
    if form.get("ButtonText") or form.get("ButtonPayload"):
        return {"kind": "button", "content": form.get("ButtonText") or body, "payload_id": form.get("ButtonPayload")}
    if form.get("Latitude") and form.get("Longitude") and not body:
        place = " — ".join(p for p in (form.get("Label"), form.get("Address")) if p)
        return {"kind": "location", "content": f"Location: {form['Latitude']}, {form['Longitude']}" + (f" ({place})" if place else "")}
    read = first_read_kind(attachments)
    if read:
        return {"kind": read, "content": body}
    if not body and attachments:
        return {"kind": "unsupported", "content": ""}
    return {"kind": "text", "content": body}


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
        {"url": form.get(f"MediaUrl{i}"), "contentType": form.get(f"MediaContentType{i}"), "source": "twilio",
         "kind": kind_of_type(form.get(f"MediaContentType{i}")) or "video"} for i in range(count)
    )
    parts = _kind(form, attachments)
    return InboundMessage(
        business_id, sender.removeprefix("whatsapp:"), "whatsapp" if whatsapp else "sms", sid, parts.pop("content"),
        received_at, attachments=attachments, reply_to={"via": "twilio", "from": to, "to": sender, **_opt_out(form)}, **parts,
    )


def _opt_out(form: Mapping[str, str]) -> dict[str, str]:
    """Twilio's Advanced Opt-Out signal (STOP, START, HELP), kept with the message's addressing."""
    return {"optOutType": form["OptOutType"].upper()} if form.get("OptOutType") else {}


def parse_status(form: Mapping[str, str]) -> StatusUpdate | None:
    """A status callback about a message we sent: delivered, read, failed or undelivered (others ignored)."""
    sid, status = form.get("MessageSid"), STATUSES.get(form.get("MessageStatus", ""))
    if not sid:
        raise BadRequest("MessageSid is required")
    if status is None:
        return None
    error = form.get("ErrorMessage") or (f"Twilio error {form['ErrorCode']}" if form.get("ErrorCode") else None)
    return StatusUpdate(sid, status, utc_now(), (error or "failed") if status == "failed" else None)  # type: ignore[arg-type]


def _form(call: WebhookCall, strict: bool) -> dict[str, str]:
    text = call.body.decode("utf-8") if strict else call.body.decode("utf-8", "replace")
    return dict(parse_qsl(text, keep_blank_values=True))


def _verify(call: WebhookCall, deps: Any = None) -> None:
    # the signature covers the form's fields, so they are split out leniently first (UTF-8 is checked after)
    verify(call.url, _form(call, strict=False), call.headers.get("x-twilio-signature"), call.secrets.get("authToken", ""))


def _strict_form(call: WebhookCall) -> dict[str, str]:
    try:
        return _form(call, strict=True)
    except UnicodeDecodeError:
        raise BadRequest("body is not valid UTF-8") from None


async def _receive(call: WebhookCall, deps: Any) -> Received:
    message = parse(call.business_id, _strict_form(call), utc_now())
    return Received([message], response=Response(EMPTY_TWIML, media_type="text/xml"))


async def _status(call: WebhookCall, deps: Any) -> Received:
    status = parse_status(_strict_form(call))
    return Received(statuses=[status] if status else [], response=Response(EMPTY_TWIML, media_type="text/xml"))


def _fields(call: SendCall, message: Outgoing) -> dict[str, str]:
    if isinstance(message, Text):
        return {"Body": message.text}
    if isinstance(message, Media):
        return {"MediaUrl": message.url, **({"Body": message.caption} if message.caption else {})}
    if isinstance(message, Template):
        variables = {str(i): p for i, p in enumerate(message.params, start=1)}
        return {"ContentSid": message.name, "ContentVariables": json.dumps(variables, ensure_ascii=False)}
    raise Unsupported(f"Twilio cannot send {type(message).__name__}")


async def send(call: SendCall, message: Outgoing) -> str | None:
    need(call.creds, "accountSid", "authToken")
    sender = call.to.get("from") or call.creds.get("fromNumber", "")
    need({"to": call.to.get("to", ""), "from": sender}, "to", "from")
    fields = {"From": sender, "To": call.to["to"], **_fields(call, message)}
    if call.public_base:
        fields["StatusCallback"] = public_url(call.public_base, f"/webhooks/twilio/{call.business_id}/status")
    url = f"{call.base.rstrip('/')}/2010-04-01/Accounts/{call.creds['accountSid']}/Messages.json"
    data = await post(call.deps.http, "Twilio", url, data=fields, auth=(call.creds["accountSid"], call.creds["authToken"]))
    return str(data["sid"])


REFUSAL = "X-Twilio-Signature missing or not valid for this business"
PROVIDER = Provider(
    name="twilio",
    channels=(SMS, WHATSAPP),
    credentials=CredentialSpec(("accountSid", "authToken", "fromNumber")),
    base_url=Setting("TWILIO_API_BASE_URL", "https://api.twilio.com"),
    webhooks=(
        Webhook("POST", "/webhooks/twilio/{businessId}", _verify, _receive, REFUSAL),
        Webhook("POST", "/webhooks/twilio/{businessId}/status", _verify, _status, REFUSAL),
    ),
    send=send,
)
