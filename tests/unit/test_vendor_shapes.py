"""One case per documented webhook shape of each vendor: what kind of message it becomes (or
which status), with its text, payload id and the message it reacts to."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from agentstream.adapters.channels import meta, twilio
from agentstream.adapters.channels.base import StatusUpdate

TS = "1764000000"
AT = datetime.fromtimestamp(int(TS), timezone.utc)


def whatsapp(message: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN"}, "contacts": [{"wa_id": "407"}],
             "messages": [{"from": "407", "id": "wamid.IN", "timestamp": TS} | message]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": value}]}]}).encode()


def messaging(obj: str, item: dict[str, Any]) -> bytes:
    base = {"sender": {"id": "PSID"}, "recipient": {"id": "PAGE"}, "timestamp": int(TS) * 1000}
    return json.dumps({"object": obj, "entry": [{"id": "PAGE", "time": 1, "messaging": [base | item]}]}).encode()


# (name, body, expected (kind, content, payloadId, reactsTo))
MESSAGES = [
    ("whatsapp text", whatsapp({"type": "text", "text": {"body": "Bună"}}), ("text", "Bună", None, None)),
    ("whatsapp reaction", whatsapp({"type": "reaction", "reaction": {"message_id": "wamid.OUT", "emoji": "👍"}}),
     ("reaction", "👍", None, "wamid.OUT")),
    ("whatsapp reaction removed", whatsapp({"type": "reaction", "reaction": {"message_id": "wamid.OUT"}}),
     ("reaction", "", None, "wamid.OUT")),
    ("whatsapp template quick reply", whatsapp({"type": "button", "button": {"text": "Yes, book it", "payload": "BOOK"}}),
     ("button", "Yes, book it", "BOOK", None)),
    ("whatsapp reply button", whatsapp({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": "b-yes", "title": "Da, rezervă"}}}), ("button", "Da, rezervă", "b-yes", None)),
    ("whatsapp list reply", whatsapp({"type": "interactive", "interactive": {
        "type": "list_reply", "list_reply": {"id": "slot-10", "title": "Joi 10:00", "description": "tuns"}}}),
     ("button", "Joi 10:00", "slot-10", None)),
    ("whatsapp location", whatsapp({"type": "location", "location": {"latitude": 44.43, "longitude": 26.1,
                                                                     "name": "Salon", "address": "Str. Lipscani 1"}}),
     ("location", "Location: 44.43, 26.1 (Salon — Str. Lipscani 1)", None, None)),
    ("whatsapp contacts", whatsapp({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana Pop"},
                                                                      "phones": [{"phone": "+40711", "type": "CELL"}]}]}),
     ("contact", "Contact: Ana Pop +40711", None, None)),
    ("whatsapp image with caption", whatsapp({"type": "image", "image": {"id": "M1", "mime_type": "image/jpeg", "caption": "culoarea asta?"}}),
     ("image", "culoarea asta?", None, None)),
    ("whatsapp voice note", whatsapp({"type": "audio", "audio": {"id": "M2", "mime_type": "audio/ogg", "voice": True}}),
     ("audio", "", None, None)),
    ("whatsapp document", whatsapp({"type": "document", "document": {"id": "M4", "mime_type": "application/pdf", "filename": "oferta.pdf"}}),
     ("document", "", None, None)),
    ("whatsapp video", whatsapp({"type": "video", "video": {"id": "M5", "mime_type": "video/mp4"}}),
     ("unsupported", "", None, None)),
    ("whatsapp sticker", whatsapp({"type": "sticker", "sticker": {"id": "M3", "mime_type": "image/webp"}}),
     ("unsupported", "", None, None)),
    ("whatsapp unsupported", whatsapp({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]}),
     ("unsupported", "", None, None)),
    ("whatsapp number change", whatsapp({"type": "system", "system": {"body": "Ana changed from 407 to 408", "type": "user_changed_number"}}),
     ("unsupported", "Ana changed from 407 to 408", None, None)),
    ("whatsapp unknown type", whatsapp({"type": "order", "order": {"catalog_id": "C"}}), ("unsupported", "", None, None)),
    ("messenger text", messaging("page", {"message": {"mid": "m_1", "text": "Salut"}}), ("text", "Salut", None, None)),
    ("messenger quick reply", messaging("page", {"message": {"mid": "m_2", "text": "Joi", "quick_reply": {"payload": "DAY_THU"}}}),
     ("button", "Joi", "DAY_THU", None)),
    ("messenger postback", messaging("page", {"postback": {"mid": "m_3", "title": "Programează", "payload": "BOOK"}}),
     ("button", "Programează", "BOOK", None)),
    ("messenger reaction", messaging("page", {"reaction": {"mid": "m_OUT", "action": "react", "reaction": "love", "emoji": "❤️"}}),
     ("reaction", "❤️", None, "m_OUT")),
    ("messenger unreaction", messaging("page", {"reaction": {"mid": "m_OUT", "action": "unreact", "reaction": "love"}}),
     ("reaction", "", None, "m_OUT")),
    ("messenger location", messaging("page", {"message": {"mid": "m_4", "attachments": [
        {"type": "location", "payload": {"coordinates": {"lat": 44.4, "long": 26.1}}}]}}), ("location", "Location: 44.4, 26.1", None, None)),
    ("messenger photo", messaging("page", {"message": {"mid": "m_5", "attachments": [
        {"type": "image", "payload": {"url": "https://cdn.example/p.jpg"}}]}}), ("image", "", None, None)),
    ("messenger file", messaging("page", {"message": {"mid": "m_6", "text": "contractul", "attachments": [
        {"type": "file", "payload": {"url": "https://cdn.example/c.pdf"}}]}}), ("document", "contractul", None, None)),
    ("instagram voice note", messaging("instagram", {"message": {"mid": "ig_2", "attachments": [
        {"type": "audio", "payload": {"url": "https://cdn.example/v.mp4"}}]}}), ("audio", "", None, None)),
    ("instagram video", messaging("instagram", {"message": {"mid": "ig_3", "attachments": [
        {"type": "video", "payload": {"url": "https://cdn.example/v.mp4"}}]}}), ("unsupported", "", None, None)),
    ("instagram text", messaging("instagram", {"message": {"mid": "ig_1", "text": "Hi"}}), ("text", "Hi", None, None)),
    ("instagram reaction", messaging("instagram", {"reaction": {"mid": "ig_OUT", "action": "react", "reaction": "love", "emoji": "❤"}}),
     ("reaction", "❤", None, "ig_OUT")),
]


@pytest.mark.parametrize(("body", "expected"), [pytest.param(b, e, id=n) for n, b, e in MESSAGES])
def test_meta_message_shapes(body: bytes, expected: tuple[str, str, str | None, str | None]) -> None:
    (message,), statuses = meta.parse("b", body)
    assert (message.kind, message.content, message.payload_id, message.reacts_to) == expected
    assert statuses == [] and message.occurred_at == AT


STATUSES = [
    ("whatsapp delivered", {"id": "wamid.OUT", "status": "delivered", "timestamp": TS, "recipient_id": "407"},
     StatusUpdate("wamid.OUT", "delivered", AT)),
    ("whatsapp read", {"id": "wamid.OUT", "status": "read", "timestamp": TS, "recipient_id": "407"},
     StatusUpdate("wamid.OUT", "read", AT)),
    ("whatsapp failed", {"id": "wamid.OUT", "status": "failed", "timestamp": TS, "recipient_id": "407",
                         "errors": [{"code": 131047, "title": "Re-engagement message"}]},
     StatusUpdate("wamid.OUT", "failed", AT, "Re-engagement message")),
]


@pytest.mark.parametrize(("status", "expected"), [pytest.param(s, e, id=n) for n, s, e in STATUSES])
def test_whatsapp_status_shapes(status: dict[str, Any], expected: StatusUpdate) -> None:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN"}, "statuses": [status]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}).encode()
    assert meta.parse("b", body) == ([], [expected])


def test_whatsapp_sent_status_is_not_recorded() -> None:
    value = {"statuses": [{"id": "wamid.OUT", "status": "sent", "timestamp": TS}]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}).encode()
    assert meta.parse("b", body) == ([], [])


def test_messenger_delivery_and_read_and_instagram_read() -> None:
    delivery = messaging("page", {"delivery": {"mids": ["m_A", "m_B"], "watermark": int(TS) * 1000}})
    assert meta.parse("b", delivery) == ([], [StatusUpdate("m_A", "delivered", AT), StatusUpdate("m_B", "delivered", AT)])
    read = messaging("page", {"read": {"watermark": int(TS) * 1000}})
    assert meta.parse("b", read) == ([], [StatusUpdate("", "read", AT, user_id="PSID")])
    seen = messaging("instagram", {"read": {"mid": "ig_OUT"}})
    assert meta.parse("b", seen) == ([], [StatusUpdate("ig_OUT", "read", AT)])


TWILIO = [
    ("sms text", {"Body": "Bună"}, ("sms", "text", "Bună", None)),
    ("whatsapp quick reply", {"Body": "Da", "ButtonText": "Da", "ButtonPayload": "CONFIRM"}, ("whatsapp", "button", "Da", "CONFIRM")),
    ("whatsapp location", {"Body": "", "Latitude": "44.43", "Longitude": "26.1", "Address": "Str. Lipscani 1"},
     ("whatsapp", "location", "Location: 44.43, 26.1 (Str. Lipscani 1)", None)),
    ("mms without text", {"Body": "", "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/1", "MediaContentType0": "image/jpeg"},
     ("sms", "image", "", None)),
    ("whatsapp voice note", {"Body": "", "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/2", "MediaContentType0": "audio/ogg"},
     ("whatsapp", "audio", "", None)),
    ("whatsapp pdf with text", {"Body": "uite", "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/3",
                                "MediaContentType0": "application/pdf"}, ("whatsapp", "document", "uite", None)),
    ("mms video", {"Body": "", "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/4", "MediaContentType0": "video/mp4"},
     ("sms", "unsupported", "", None)),
]


@pytest.mark.parametrize(("fields", "expected"), [pytest.param(f, e, id=n) for n, f, e in TWILIO])
def test_twilio_message_shapes(fields: dict[str, str], expected: tuple[str, str, str, str | None]) -> None:
    sender = "whatsapp:+407" if expected[0] == "whatsapp" else "+407"
    form = {"MessageSid": "SM1", "From": sender, "To": "+401", "NumMedia": "0"} | fields
    message = twilio.parse("b", form, AT)
    assert (message.channel, message.kind, message.content, message.payload_id) == expected


@pytest.mark.parametrize(("status", "expected"), [("delivered", "delivered"), ("read", "read"), ("failed", "failed"),
                                                  ("undelivered", "failed"), ("sent", None), ("queued", None)])
def test_twilio_status_callbacks(status: str, expected: str | None) -> None:
    update = twilio.parse_status({"MessageSid": "SMOUT", "MessageStatus": status, "ErrorCode": "30008"})
    assert (update.status if update else None) == expected
    if update is not None and expected == "failed":
        assert update.error == "Twilio error 30008"


def test_gmail_html_loses_its_styles_scripts_and_quoted_history() -> None:
    from agentstream.adapters.channels import gmail
    markup = ("<html><head><style>p{color:red}</style><title>Re</title></head><body><p>Hi,</p><p>a table for "
              "<b>two</b>&nbsp;&amp; a cake?</p><script>track()</script><div class=\"gmail_quote\">On Mon X wrote:"
              "<blockquote>old</blockquote></div></body></html>")
    assert gmail.html_to_text(markup) == "Hi,\na table for two & a cake?"
