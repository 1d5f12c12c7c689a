"""Telegram: Bot API webhooks (checked by the secret token set with setWebhook, sent back in
`X-Telegram-Bot-Api-Secret-Token`) and replies through sendMessage and its siblings."""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timezone
from typing import Any

from agentstream.adapters.channels.base import (
    Setting, CredentialSpec, EventChannel, Media, Outgoing, Provider, Reaction, Received, SendCall, Text, Typing,
    Unsupported, Webhook, WebhookCall,
)
from agentstream.adapters.channels.errors import BadRequest, BadSignature
from agentstream.adapters.channels.http import need, post_json
from agentstream.adapters.channels.media_kinds import media_parts
from agentstream.adapters.ingest import InboundMessage

TELEGRAM = EventChannel("telegram", "Telegram", can=frozenset({"text", "image", "audio", "document", "video", "typing",
                                                                 "reaction"}))
MEDIA = {"image": ("sendPhoto", "photo"), "audio": ("sendAudio", "audio"), "document": ("sendDocument", "document"),
         "video": ("sendVideo", "video")}
UNSUPPORTED = ("photo", "voice", "audio", "video", "video_note", "document", "sticker", "animation", "poll", "dice")


def _verify(call: WebhookCall, deps: Any = None) -> None:
    token = call.headers.get("x-telegram-bot-api-secret-token", "")
    expected = call.secrets.get("secretToken", "")
    if not token or not expected or not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode()):
        raise BadSignature("X-Telegram-Bot-Api-Secret-Token does not match")


def _message_parts(message: dict[str, Any]) -> dict[str, Any]:
    if "text" in message:
        return {"kind": "text", "content": message["text"]}
    if "location" in message:
        place = message["location"]
        return {"kind": "location", "content": f"Location: {place.get('latitude')}, {place.get('longitude')}"}
    if "contact" in message:
        card = message["contact"]
        name = " ".join(p for p in (card.get("first_name"), card.get("last_name")) if p)
        return {"kind": "contact", "content": f"Contact: {name} {card.get('phone_number', '')}".strip()}
    kind = next((k for k in UNSUPPORTED if k in message), "unknown")
    return media_parts(kind, message.get("caption", ""), _file(message.get(kind), PHOTO_TYPE if kind == "photo" else None))


PHOTO_TYPE = "image/jpeg"  # the Bot API names no type for a photo: Telegram keeps photos as JPEG


def _file(found: Any, content_type: str | None = None) -> dict[str, Any]:
    """The Bot API's reference to a file (a photo comes in sizes: the largest is taken)."""
    if isinstance(found, list):
        found = max(found, key=lambda size: (size.get("file_size") or 0, size.get("width") or 0), default={})
    if not isinstance(found, dict) or "file_id" not in found:
        return {}
    return {"fileId": found["file_id"], "source": "telegram", "contentType": found.get("mime_type") or content_type,
            "size": found.get("file_size"), "name": found.get("file_name")}


def _inbound(business_id: str, chat_id: str, user_id: str, message_id: Any, date: Any, parts: dict[str, Any]) -> InboundMessage:
    at = datetime.fromtimestamp(float(date), timezone.utc) if date else None
    return InboundMessage(business_id, user_id, "telegram", f"{chat_id}:{message_id}", parts.pop("content"), at,
                          reply_to={"chat_id": chat_id}, **parts)


def parse(business_id: str, raw_body: bytes) -> list[InboundMessage]:
    """The customer's message, tapped button or reaction of one update (none for other updates)."""
    try:
        update = json.loads(raw_body)
        if "message" in update:
            m = update["message"]
            chat = str(m["chat"]["id"])
            return [_inbound(business_id, chat, str(m["from"]["id"]), m["message_id"], m.get("date"), _message_parts(m))]
        if "callback_query" in update:
            q = update["callback_query"]
            chat = str(q["message"]["chat"]["id"])
            parts = {"kind": "button", "content": str(q.get("data", "")), "payload_id": str(q.get("data", ""))}
            return [_inbound(business_id, chat, str(q["from"]["id"]), f"callback:{q['id']}", None, parts)]
        if "message_reaction" in update:
            r = update["message_reaction"]
            chat = str(r["chat"]["id"])
            emoji = next((x.get("emoji", "") for x in r.get("new_reaction", []) if x.get("type") == "emoji"), "")
            parts = {"kind": "reaction", "content": emoji, "reacts_to": f"{chat}:{r['message_id']}"}
            return [_inbound(business_id, chat, str(r["user"]["id"]), f"reaction:{update['update_id']}", r.get("date"), parts)]
        return []
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"not a Telegram update: {type(exc).__name__} {exc}") from None


async def _receive(call: WebhookCall, deps: Any) -> Received:
    return Received(parse(call.business_id, call.body))


def _request(message: Outgoing, chat_id: str) -> tuple[str, dict[str, Any]]:
    if isinstance(message, Text):
        return "sendMessage", {"chat_id": chat_id, "text": message.text}
    if isinstance(message, Typing):
        return "sendChatAction", {"chat_id": chat_id, "action": "typing"}
    if isinstance(message, Media):
        method, field = MEDIA[message.kind]
        return method, {"chat_id": chat_id, field: message.url, **({"caption": message.caption} if message.caption else {})}
    if isinstance(message, Reaction):
        return "setMessageReaction", {"chat_id": chat_id, "message_id": int(message.message_id.rpartition(":")[2]),
                                      "reaction": [{"type": "emoji", "emoji": message.emoji}]}
    raise Unsupported(f"Telegram cannot send {type(message).__name__}")


async def send(call: SendCall, message: Outgoing) -> str | None:
    need(call.creds, "botToken")
    need(call.to, "chat_id")
    method, body = _request(message, call.to["chat_id"])
    data = await post_json(call.deps.http, "Telegram", f"{call.base.rstrip('/')}/bot{call.creds['botToken']}/{method}", body, {})
    sent = data.get("result")
    return f"{call.to['chat_id']}:{sent['message_id']}" if isinstance(sent, dict) and "message_id" in sent else None


PROVIDER = Provider(
    name="telegram",
    channels=(TELEGRAM,),
    credentials=CredentialSpec(("botToken", "secretToken"), generated="secretToken"),
    base_url=Setting("TELEGRAM_API_BASE_URL", "https://api.telegram.org"),
    webhooks=(Webhook("POST", "/webhooks/telegram/{businessId}", _verify, _receive,
                      "X-Telegram-Bot-Api-Secret-Token missing or not valid for this business"),),
    send=send,
)
