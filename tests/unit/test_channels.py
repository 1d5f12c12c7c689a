"""Channel parsers and senders: signatures, shapes, text extraction, error classes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import httpx
import pytest
from twilio.request_validator import RequestValidator

from types import SimpleNamespace

from agentstream.adapters.channels import gmail, meta, twilio
from agentstream.adapters.channels.base import SendCall, StatusUpdate, Text
from agentstream.adapters.channels.errors import BadRequest, BadSignature, PermanentError, RetryableError
from tests.fakes.vendors import VendorServer


def sign(body: bytes, secret: str = "s3cret") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_meta_signature_and_handshake() -> None:
    body = b'{"object":"page","entry":[]}'
    meta.verify_signature(body, sign(body), "s3cret")
    for header in (None, "sha1=abc", sign(body, "other"), sign(body + b" ")):
        with pytest.raises(BadSignature):
            meta.verify_signature(body, header, "s3cret")
    assert meta.verify_subscription({"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "42"}, "t") == "42"
    with pytest.raises(BadSignature):
        meta.verify_subscription({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42"}, "t")


def test_whatsapp_messages_media_and_statuses() -> None:
    value = {"metadata": {"phone_number_id": "PN"}, "messages": [
        {"from": "407", "id": "w1", "timestamp": "1764000000", "type": "text", "text": {"body": "Bună 👋"}},
        {"from": "407", "id": "w2", "timestamp": "1764000001", "type": "image", "image": {"id": "MEDIA", "mime_type": "image/png", "caption": "poza"}},
    ], "statuses": [{"id": "sent1", "status": "failed", "recipient_id": "407", "errors": [{"title": "Re-engagement message"}]}]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}).encode()
    messages, statuses = meta.parse("b", body)
    assert [(m.external_id, m.content) for m in messages] == [("w1", "Bună 👋"), ("w2", "poza")]
    assert messages[1].attachments[0]["contentType"] == "image/png" and messages[0].reply_to == {"phone_number_id": "PN", "to": "407"}
    assert messages[0].occurred_at == datetime.fromtimestamp(1764000000, timezone.utc)
    assert statuses == [StatusUpdate("sent1", "failed", None, "Re-engagement message")]


def test_instagram_and_malformed_meta_bodies() -> None:
    body = {"object": "instagram", "entry": [{"messaging": [
        {"sender": {"id": "IG1"}, "recipient": {"id": "ME"}, "timestamp": 1764000000000, "message": {"mid": "ig.1", "text": "مرحبا"}}]}]}
    (message,), _ = meta.parse("b", json.dumps(body).encode())
    assert message.channel == "instagram" and message.content == "مرحبا" and message.reply_to["page_id"] == "ME"
    for raw in (b"not json", b'{"object": "unknown", "entry": []}', b'{"object": "page"}', b"[]"):
        with pytest.raises(BadRequest):
            meta.parse("b", raw)


def test_twilio_signature_with_the_vendors_validator() -> None:
    url = "https://example.com/webhooks/twilio/b"
    form = {"MessageSid": "SM1", "From": "whatsapp:+407", "To": "whatsapp:+401", "Body": "salut", "NumMedia": "0"}
    twilio.verify(url, form, RequestValidator("tok").compute_signature(url, form), "tok")
    with pytest.raises(BadSignature):
        twilio.verify(url, form, RequestValidator("tok").compute_signature(url + "x", form), "tok")
    message = twilio.parse("b", form, datetime.now(timezone.utc))
    assert (message.channel, message.user_id, message.reply_to["via"]) == ("whatsapp", "+407", "twilio")
    with pytest.raises(BadRequest):
        twilio.parse("b", {"From": "+407"}, datetime.now(timezone.utc))
    assert twilio.public_url("https://x.io/", "/webhooks/twilio/b", "a=1") == "https://x.io/webhooks/twilio/b?a=1"


def test_gmail_push_and_text_extraction() -> None:
    data = base64.b64encode(json.dumps({"emailAddress": "a@b.c", "historyId": 77}).encode()).decode()
    assert gmail.parse_push(json.dumps({"message": {"data": data}}).encode(), "tok", "tok") == ("a@b.c", 77)
    with pytest.raises(BadSignature):
        gmail.parse_push(b"{}", "x", "tok")
    with pytest.raises(BadRequest):
        gmail.parse_push(b'{"message": {"data": "!!"}}', "tok", "tok")
    html = '<div>Bună ziua,<br>vreau o programare &amp; un preț.</div><div class="gmail_quote">On Mon X wrote: old</div>'
    payload = {"mimeType": "text/html", "body": {"data": base64.urlsafe_b64encode(html.encode()).decode()}}
    assert gmail.extract_text(payload) == "Bună ziua,\nvreau o programare & un preț."
    assert gmail.strip_quotes("Da, mulțumesc.\n\nÎn lun., 1 ian. 2026, Salon a scris:\n> vechi") == "Da, mulțumesc."
    sent = {"id": "1", "labelIds": ["SENT"], "payload": {"headers": [{"name": "From", "value": "salon@x.ro"}]}}
    assert gmail.message_to_inbound("b", sent) is None


def call(http: httpx.AsyncClient, channel: str, base: str, creds: dict[str, str], to: dict[str, str]) -> SendCall:
    """A send as delivery makes it (no token refresh: a fixed token's calls)."""
    async def fixed(business_id: str, send):  # type: ignore[no-untyped-def]
        return await send(creds.get("accessToken", ""))
    return SendCall("b", channel, creds, to, base, SimpleNamespace(http=http, gmail=SimpleNamespace(call=fixed)))


async def test_senders_make_the_vendors_requests_and_classify_errors() -> None:
    with VendorServer() as vendors:
        async with httpx.AsyncClient() as http:
            creds = {"accessToken": "tok"}
            graph = f"{vendors.base}/graph"
            wamid = await meta.send(call(http, "whatsapp", graph, creds, {"phone_number_id": "PN", "to": "407"}), Text("Salut"))
            assert wamid.startswith("wamid.")
            (req,) = vendors.state.sent("/graph/PN/messages")
            assert req.json == {"messaging_product": "whatsapp", "to": "407", "type": "text", "text": {"body": "Salut"}}
            vendors.state.fail_next, vendors.state.fail_status = 1, 429
            with pytest.raises(RetryableError):
                await meta.send(call(http, "messenger", graph, creds, {"to": "P"}), Text("x"))
            vendors.state.fail_next, vendors.state.fail_status = 1, 400
            with pytest.raises(PermanentError) as err:
                await twilio.send(call(http, "sms", f"{vendors.base}/twilio", {"accountSid": "AC", "authToken": "secret-token"},
                                       {"to": "+4", "from": "+1"}), Text("x"))
            assert "secret-token" not in str(err.value)
            with pytest.raises(RetryableError):
                await gmail.send(call(http, "gmail", "http://127.0.0.1:1", creds, {"to": "a@b.c"}), Text("x"))
            with pytest.raises(PermanentError):
                await meta.send(call(http, "whatsapp", graph, {}, {"phone_number_id": "PN", "to": "1"}), Text("x"))
