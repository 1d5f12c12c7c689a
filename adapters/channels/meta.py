"""Meta: WhatsApp Cloud API, Messenger and Instagram (webhooks verified by the app secret,
every documented message kind and status, sending through the Graph API)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from starlette.responses import PlainTextResponse

from agentstream.adapters.channels.base import (
    Setting, CredentialSpec, EventChannel, Media, OptSignal, Outgoing, Provider, Reaction, Received, SendCall, StatusUpdate,
    Template, Text, Typing, Unsupported, Webhook, WebhookCall,
)
from agentstream.adapters.channels.errors import BadRequest, BadSignature
from agentstream.adapters.channels.http import need, post_json
from agentstream.adapters.channels.media_kinds import VENDOR_KINDS, first_read_kind, media_parts
from agentstream.adapters.ingest import InboundMessage

WHATSAPP = EventChannel("whatsapp", "WhatsApp", window_hours=24, identity="phone",
                        can=frozenset({"text", "template", "image", "audio", "document", "video", "typing",
                                       "read_receipts", "reaction"}))
MESSENGER = EventChannel("messenger", "Messenger", window_hours=24, max_text=2000,
                         can=frozenset({"text", "image", "audio", "document", "video", "typing", "read_receipts"}))
INSTAGRAM = EventChannel("instagram", "Instagram", window_hours=24, max_text=1000,
                         can=frozenset({"text", "image", "audio", "video", "typing", "read_receipts"}))
OBJECTS = {"whatsapp_business_account": "whatsapp", "page": "messenger", "instagram": "instagram"}
MEDIA = ("image", "audio", "video", "document", "sticker")
STATUSES = ("delivered", "read", "failed")
PREFERENCES = {"stop": "STOP", "resume": "START"}  # user_preferences' marketing_messages values


def verify_subscription(params: Mapping[str, str], verify_token: str) -> str:
    """The hub.challenge handshake: the challenge, if the token matches."""
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not verify_token or not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise BadSignature("verify token does not match")
    return params.get("hub.challenge", "")


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> None:
    """X-Hub-Signature-256: HMAC-SHA256 of the raw body with the app secret, compared as bytes."""
    if not header or not header.startswith("sha256=") or not app_secret:
        raise BadSignature("missing X-Hub-Signature-256")
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(header[7:].encode("utf-8", "surrogateescape"), expected):
        raise BadSignature("X-Hub-Signature-256 does not match")


def _when(value: Any, millis: bool) -> datetime:
    try:
        seconds = float(value) / (1000 if millis else 1)
    except (TypeError, ValueError):
        raise BadRequest("timestamp missing or not a number") from None
    return datetime.fromtimestamp(seconds, timezone.utc)


# ---- WhatsApp ---------------------------------------------------------------------------------------

def _location(place: dict[str, Any]) -> str:
    where = f"{place.get('latitude')}, {place.get('longitude')}"
    named = " — ".join(str(p) for p in (place.get("name"), place.get("address")) if p)
    return f"Location: {where}" + (f" ({named})" if named else "")


def _contact(card: dict[str, Any]) -> str:
    name = (card.get("name") or {}).get("formatted_name", "")
    phones = ", ".join(str(p.get("phone", "")) for p in card.get("phones", []) if p.get("phone"))
    return "Contact: " + " ".join(part for part in (name, phones) if part)


def whatsapp_kind(m: dict[str, Any]) -> dict[str, Any]:
    """kind, content, payload id, the message reacted to and attachments of one WhatsApp message."""
    kind = m.get("type", "text")
    if kind == "text":
        return {"kind": "text", "content": m.get("text", {}).get("body", "")}
    if kind == "reaction":
        reaction = m.get("reaction", {})
        return {"kind": "reaction", "content": reaction.get("emoji", ""), "reacts_to": reaction.get("message_id")}
    if kind == "button":
        return {"kind": "button", "content": m["button"].get("text", ""), "payload_id": m["button"].get("payload")}
    if kind == "interactive":
        reply = m["interactive"].get("button_reply") or m["interactive"].get("list_reply") or {}
        return {"kind": "button", "content": reply.get("title", ""), "payload_id": reply.get("id")}
    if kind == "location":
        return {"kind": "location", "content": _location(m.get("location", {}))}
    if kind == "contacts":
        return {"kind": "contact", "content": "\n".join(_contact(c) for c in m.get("contacts", []))}
    if kind in MEDIA:
        media = m.get(kind, {})
        attachment = {"id": media.get("id"), "contentType": media.get("mime_type"), "source": "meta",
                      "name": media.get("filename"), "voice": media.get("voice")}
        return media_parts(kind, media.get("caption", ""), attachment)
    if kind == "system":
        return {"kind": "unsupported", "content": m.get("system", {}).get("body", "")}
    return {"kind": "unsupported", "content": ""}  # unsupported, order, unknown types: recorded, not answered


def _whatsapp(business_id: str, value: dict[str, Any]) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    phone_id = str(value.get("metadata", {}).get("phone_number_id", ""))
    messages = []
    for m in value.get("messages", []):
        parts = whatsapp_kind(m)
        messages.append(InboundMessage(
            business_id, str(m["from"]), "whatsapp", str(m["id"]), parts.pop("content"), _when(m.get("timestamp"), False),
            reply_to={"phone_number_id": phone_id, "to": str(m["from"])}, **parts,
        ))
    statuses = [
        StatusUpdate(str(s["id"]), s["status"], _when(s.get("timestamp"), False) if s.get("timestamp") else None,
                     (s.get("errors") or [{}])[0].get("title") or "failed" if s["status"] == "failed" else None)
        for s in value.get("statuses", []) if s.get("status") in STATUSES
    ]
    return messages, statuses


def preferences(raw_body: bytes) -> list[OptSignal]:
    """WhatsApp's `user_preferences` changes (a customer stopped or resumed marketing messages in
    the app, without writing): one signal each; other categories and values are ignored."""
    try:
        body = json.loads(raw_body)
        if OBJECTS.get(body.get("object")) != "whatsapp":
            return []
        values = [c.get("value") or {} for e in body["entry"] for c in e.get("changes", [])
                  if c.get("field") == "user_preferences"]
        return [OptSignal(str(p["wa_id"]), "whatsapp", PREFERENCES[p["value"]],  # type: ignore[arg-type]
                          f"user_preferences:{p['wa_id']}:{p.get('timestamp')}:{p['value']}",
                          _when(p["timestamp"], False) if p.get("timestamp") else None)
                for v in values for p in v.get("user_preferences", [])
                if p.get("category") == "marketing_messages" and p.get("value") in PREFERENCES]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"not a Meta webhook body: {type(exc).__name__} {exc}") from None


# ---- Messenger and Instagram ------------------------------------------------------------------------

def _messaging_message(message: dict[str, Any]) -> dict[str, Any]:
    quick = message.get("quick_reply")
    if quick:
        return {"kind": "button", "content": message.get("text", ""), "payload_id": quick.get("payload")}
    attachments = tuple({"url": a.get("payload", {}).get("url"), "source": "url", "kind": VENDOR_KINDS.get(a.get("type"), a.get("type"))}
                        for a in message.get("attachments", []))
    text = message.get("text", "")
    locations = [a for a in message.get("attachments", []) if a.get("type") == "location"]
    if locations and not text:
        coords = locations[0].get("payload", {}).get("coordinates", {})
        return {"kind": "location", "content": _location({"latitude": coords.get("lat"), "longitude": coords.get("long")})}
    read = first_read_kind(attachments)
    return {"kind": read or ("text" if text else "unsupported"), "content": text, "attachments": attachments}


def _messaging_item(business_id: str, channel: str, item: dict[str, Any]) -> InboundMessage | None:
    sender, page = str(item["sender"]["id"]), str(item["recipient"]["id"])
    at = _when(item.get("timestamp"), True)
    if "postback" in item:
        postback = item["postback"]
        mid = postback.get("mid") or f"postback:{sender}:{item.get('timestamp')}"
        parts: dict[str, Any] = {"kind": "button", "content": postback.get("title", ""), "payload_id": postback.get("payload")}
    elif "reaction" in item:
        reaction = item["reaction"]
        emoji = reaction.get("emoji", reaction.get("reaction", "")) if reaction.get("action", "react") == "react" else ""
        mid = f"reaction:{reaction.get('mid')}:{sender}:{item.get('timestamp')}"
        parts = {"kind": "reaction", "content": emoji, "reacts_to": reaction.get("mid")}
    else:
        message = item.get("message")
        if not message or message.get("is_echo"):
            return None
        mid, parts = str(message["mid"]), _messaging_message(message)
    return InboundMessage(business_id, sender, channel, str(mid), parts.pop("content"), at,
                          reply_to={"page_id": page, "to": sender}, **parts)


def _messaging_statuses(item: dict[str, Any]) -> list[StatusUpdate]:
    """Messenger's `delivery` (by mids) and Instagram's `read` (by mid); Messenger's `read` names
    only a watermark: every message sent before it is read (resolved against the log)."""
    if "delivery" in item:
        at = _when(item["delivery"].get("watermark", item.get("timestamp")), True)
        return [StatusUpdate(str(mid), "delivered", at) for mid in item["delivery"].get("mids", [])]
    if "read" in item:
        read = item["read"]
        if read.get("mid"):
            return [StatusUpdate(str(read["mid"]), "read", _when(item.get("timestamp"), True))]
        return [StatusUpdate("", "read", _when(read.get("watermark"), True), user_id=str(item["sender"]["id"]))]
    return []


def _messaging(business_id: str, channel: str, entry: dict[str, Any]) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    messages, statuses = [], []
    for item in entry.get("messaging", []):
        statuses += _messaging_statuses(item)
        if "delivery" not in item and "read" not in item:
            found = _messaging_item(business_id, channel, item)
            if found is not None:
                messages.append(found)
    return messages, statuses


def parse(business_id: str, raw_body: bytes) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    """Every customer message and delivery status in one webhook call."""
    try:
        body = json.loads(raw_body)
        channel = OBJECTS[body["object"]]
        messages: list[InboundMessage] = []
        statuses: list[StatusUpdate] = []
        for entry in body["entry"]:
            changes = [change["value"] for change in entry.get("changes", [])] if channel == "whatsapp" else [None]
            for value in changes:
                got, status = _whatsapp(business_id, value) if value is not None else _messaging(business_id, channel, entry)
                messages += got
                statuses += status
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"not a Meta webhook body: {type(exc).__name__} {exc}") from None
    return messages, statuses


# ---- webhooks -----------------------------------------------------------------------------------

def _verify_post(call: WebhookCall, deps: Any = None) -> None:
    verify_signature(call.body, call.headers.get("x-hub-signature-256"), call.secrets.get("appSecret", ""))


def _verify_get(call: WebhookCall, deps: Any = None) -> None:
    verify_subscription(call.query, call.secrets.get("verifyToken", ""))


async def _receive(call: WebhookCall, deps: Any) -> Received:
    messages, statuses = parse(call.business_id, call.body)
    return Received(messages, statuses, preferences(call.body))


async def _handshake(call: WebhookCall, deps: Any) -> Received:
    return Received(response=PlainTextResponse(call.query.get("hub.challenge", "")))


# ---- sending ---------------------------------------------------------------------------------------

def _whatsapp_body(message: Outgoing) -> dict[str, Any]:
    if isinstance(message, Text):
        return {"type": "text", "text": {"body": message.text}}
    if isinstance(message, Template):
        params = [{"type": "text", "text": p} for p in message.params]
        components = [{"type": "body", "parameters": params}] if params else []
        return {"type": "template", "template": {"name": message.name, "language": {"code": message.language},
                                                 "components": components}}
    if isinstance(message, Media):
        media: dict[str, Any] = {"link": message.url}
        if message.caption and message.kind != "audio":
            media["caption"] = message.caption
        if message.filename and message.kind == "document":
            media["filename"] = message.filename
        return {"type": message.kind, message.kind: media}
    if isinstance(message, Reaction):
        return {"type": "reaction", "reaction": {"message_id": message.message_id, "emoji": message.emoji}}
    raise Unsupported(f"WhatsApp cannot send {type(message).__name__}")


async def _send_whatsapp(call: SendCall, message: Outgoing) -> str | None:
    need(call.creds, "accessToken")
    need(call.to, "phone_number_id", "to")
    url = f"{call.base.rstrip('/')}/{call.to['phone_number_id']}/messages"
    headers = {"Authorization": f"Bearer {call.creds['accessToken']}"}
    if isinstance(message, Typing):  # WhatsApp shows typing while it marks the customer's message read
        need({"reading": message.reading}, "reading")
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message.reading,
                "typing_indicator": {"type": "text"}}
        await post_json(call.deps.http, "Meta", url, body, headers)
        return None
    body = {"messaging_product": "whatsapp", "to": call.to["to"], **_whatsapp_body(message)}
    data = await post_json(call.deps.http, "Meta", url, body, headers)
    return str(data["messages"][0]["id"])


def _messenger_body(message: Outgoing) -> dict[str, Any]:
    if isinstance(message, Text) and message.tag:
        return {"messaging_type": "MESSAGE_TAG", "tag": message.tag, "message": {"text": message.text}}
    if isinstance(message, Text):
        return {"messaging_type": "RESPONSE", "message": {"text": message.text}}
    if isinstance(message, Media):
        kind = "file" if message.kind == "document" else message.kind
        return {"messaging_type": "RESPONSE",
                "message": {"attachment": {"type": kind, "payload": {"url": message.url, "is_reusable": True}}}}
    if isinstance(message, Typing):
        return {"sender_action": "typing_on"}
    raise Unsupported(f"Messenger cannot send {type(message).__name__}")


async def _send_messenger(call: SendCall, message: Outgoing) -> str | None:
    need(call.creds, "accessToken")
    need(call.to, "to")
    body = {"recipient": {"id": call.to["to"]}, **_messenger_body(message)}
    data = await post_json(call.deps.http, "Meta", f"{call.base.rstrip('/')}/me/messages", body,
                           {"Authorization": f"Bearer {call.creds['accessToken']}"})
    return str(data["message_id"]) if "message_id" in data else None


async def send(call: SendCall, message: Outgoing) -> str | None:
    return await (_send_whatsapp if call.channel == "whatsapp" else _send_messenger)(call, message)


PROVIDER = Provider(
    name="meta",
    channels=(WHATSAPP, MESSENGER, INSTAGRAM),
    credentials=CredentialSpec(("appSecret", "verifyToken", "accessToken"), generated="verifyToken"),
    base_url=Setting("META_GRAPH_BASE_URL", "https://graph.facebook.com/v21.0"),
    webhooks=(
        Webhook("GET", "/webhooks/meta/{businessId}", _verify_get, _handshake,
                "verify token missing or not valid for this business"),
        Webhook("POST", "/webhooks/meta/{businessId}", _verify_post, _receive,
                "X-Hub-Signature-256 missing or not valid for this business"),
    ),
    send=send,
)
