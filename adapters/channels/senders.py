"""Sends a reply through the channel's real API; returns the channel's id of the sent message."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import httpx

from agentstream.adapters.channels.errors import PermanentError, RetryableError, Unauthorized


def _result(resp: httpx.Response, vendor: str) -> dict[str, Any]:
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetryableError(f"{vendor} answered {resp.status_code}")
    if resp.status_code == 401:
        raise Unauthorized(f"{vendor} answered 401")
    if resp.status_code >= 400:
        raise PermanentError(f"{vendor} answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


async def _post(http: httpx.AsyncClient, vendor: str, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return _result(await http.post(url, **kwargs), vendor)
    except httpx.TransportError as exc:
        raise RetryableError(f"{vendor} unreachable: {type(exc).__name__}") from None


def _need(values: dict[str, str], *keys: str) -> None:
    missing = [k for k in keys if not values.get(k)]
    if missing:
        raise PermanentError(f"missing {', '.join(missing)}")


async def send_whatsapp(http: httpx.AsyncClient, base: str, creds: dict[str, str], to: dict[str, str], text: str) -> str:
    _need(creds, "accessToken")
    _need(to, "phone_number_id", "to")
    body = {"messaging_product": "whatsapp", "to": to["to"], "type": "text", "text": {"body": text}}
    data = await _post(http, "Meta", f"{base.rstrip('/')}/{to['phone_number_id']}/messages", json=body,
                       headers={"Authorization": f"Bearer {creds['accessToken']}"})
    return str(data["messages"][0]["id"])


async def send_messenger(http: httpx.AsyncClient, base: str, creds: dict[str, str], to: dict[str, str], text: str) -> str:
    _need(creds, "accessToken")
    _need(to, "to")
    body = {"recipient": {"id": to["to"]}, "messaging_type": "RESPONSE", "message": {"text": text}}
    data = await _post(http, "Meta", f"{base.rstrip('/')}/me/messages", json=body,
                       headers={"Authorization": f"Bearer {creds['accessToken']}"})
    return str(data["message_id"])


async def send_twilio(http: httpx.AsyncClient, base: str, creds: dict[str, str], to: dict[str, str], text: str) -> str:
    _need(creds, "accountSid", "authToken")
    sender = to.get("from") or creds.get("fromNumber", "")
    _need({"to": to.get("to", ""), "from": sender}, "to", "from")
    url = f"{base.rstrip('/')}/2010-04-01/Accounts/{creds['accountSid']}/Messages.json"
    data = await _post(http, "Twilio", url, data={"From": sender, "To": to["to"], "Body": text},
                       auth=(creds["accountSid"], creds["authToken"]))
    return str(data["sid"])


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


async def send_gmail(http: httpx.AsyncClient, base: str, creds: dict[str, str], to: dict[str, str], text: str) -> str:
    _need(creds, "accessToken")
    _need(to, "to")
    body = {"raw": _mime(to, text), "threadId": to.get("threadId", "")}
    data = await _post(http, "Gmail", f"{base.rstrip('/')}/gmail/v1/users/me/messages/send", json=body,
                       headers={"Authorization": f"Bearer {creds['accessToken']}"})
    return str(data["id"])


def provider_for(channel: str, reply_to: dict[str, str]) -> str:
    """Which credentials a reply needs: twilio, meta or gmail."""
    if reply_to.get("via") == "twilio" or channel == "sms":
        return "twilio"
    if channel in ("whatsapp", "messenger", "instagram"):
        return "meta"
    if channel == "gmail":
        return "gmail"
    raise PermanentError(f"no outbound channel for {channel!r}")


SENDERS = {"twilio": send_twilio, "gmail": send_gmail}
META_SENDERS = {"whatsapp": send_whatsapp, "messenger": send_messenger, "instagram": send_messenger}
