"""Customers' files as the vendors send them: Telegram's photo (an array of sizes), voice note
and document, and Messenger's audio and Instagram's photo and file (Meta's `messaging` webhook),
each becoming a message of its kind with the vendor's reference to the file, which the media
process then fetches from the right place."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentstream.adapters.channels import meta, telegram
from agentstream.adapters.ingest import InboundMessage
from agentstream.adapters.media_fetch import Source, fetch

CHAT = 5550001


def telegram_update(**message: Any) -> bytes:
    """A Bot API update of a private chat's message (its other fields as Telegram sends them)."""
    base = {"message_id": 77, "date": 1764000000, "from": {"id": CHAT, "is_bot": False, "first_name": "Ana"},
            "chat": {"id": CHAT, "first_name": "Ana", "type": "private"}}
    return json.dumps({"update_id": 900, "message": base | message}).encode()


def one_telegram(body: bytes) -> InboundMessage:
    (message,) = telegram.parse("b", body)
    return message


PHOTO_SIZES = [  # Telegram's PhotoSize array, smallest first: no mime type, no file name
    {"file_id": "AgACAgQAAxkBAAIBs-small", "file_unique_id": "AQADs1", "file_size": 1402, "width": 90, "height": 67},
    {"file_id": "AgACAgQAAxkBAAIBs-large", "file_unique_id": "AQADs3", "file_size": 81240, "width": 1280, "height": 960},
    {"file_id": "AgACAgQAAxkBAAIBs-medium", "file_unique_id": "AQADs2", "file_size": 19876, "width": 320, "height": 240},
]


def test_a_telegram_photo_is_its_largest_size_with_its_caption_as_the_text() -> None:
    message = one_telegram(telegram_update(photo=PHOTO_SIZES, caption="culoarea asta?"))
    assert (message.kind, message.content, message.external_id) == ("image", "culoarea asta?", f"{CHAT}:77")
    assert message.attachments == ({"fileId": "AgACAgQAAxkBAAIBs-large", "source": "telegram", "contentType": "image/jpeg",
                                    "size": 81240, "kind": "image"},)


def test_a_telegram_photo_without_sizes_given_is_the_widest() -> None:
    sizes = [{k: v for k, v in s.items() if k != "file_size"} for s in PHOTO_SIZES]  # file_size is optional
    assert one_telegram(telegram_update(photo=sizes)).attachments[0]["fileId"] == "AgACAgQAAxkBAAIBs-large"


def test_a_telegram_voice_note_is_audio_with_its_type_and_size() -> None:
    voice = {"duration": 4, "mime_type": "audio/ogg", "file_id": "AwACAgQAAxkBAAIBvoice", "file_unique_id": "AgADv",
             "file_size": 12034}
    message = one_telegram(telegram_update(voice=voice))
    assert (message.kind, message.content) == ("audio", "")
    assert message.attachments == ({"fileId": "AwACAgQAAxkBAAIBvoice", "source": "telegram", "contentType": "audio/ogg",
                                    "size": 12034, "kind": "audio"},)


def test_a_telegram_document_keeps_its_type_and_file_name_and_its_caption() -> None:
    document = {"file_name": "oferta.pdf", "mime_type": "application/pdf", "file_id": "BQACAgQAAxkBAAIBdoc",
                "file_unique_id": "AgADd", "file_size": 48211}
    message = one_telegram(telegram_update(document=document, caption="uitați oferta"))
    assert (message.kind, message.content) == ("document", "uitați oferta")
    assert message.attachments == ({"fileId": "BQACAgQAAxkBAAIBdoc", "source": "telegram", "contentType": "application/pdf",
                                    "size": 48211, "name": "oferta.pdf", "kind": "document"},)


def test_a_telegram_video_or_sticker_is_unsupported_unless_it_has_a_caption() -> None:
    video = {"file_id": "BAACvideo", "file_unique_id": "v", "duration": 3, "width": 640, "height": 480, "mime_type": "video/mp4"}
    assert one_telegram(telegram_update(video=video)).kind == "unsupported"
    assert one_telegram(telegram_update(video=video, caption="e ok?")).kind == "text"
    sticker = {"file_id": "CAACsticker", "file_unique_id": "s", "type": "regular", "width": 512, "height": 512,
               "is_animated": False, "is_video": False}
    assert one_telegram(telegram_update(sticker=sticker)).kind == "unsupported"


async def test_a_telegram_photo_is_fetched_through_get_file_as_a_jpeg() -> None:
    """The file server of the Bot API may serve a file as octet-stream: the type recorded at
    parse (a photo is JPEG), else the file path's extension, names it."""
    photo = b"\xff\xd8\xff\xe0" + b"p" * 100
    pdf = b"%PDF-1.4 x"

    def bot_api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/bot1:t/getFile":
            path = {"PH": "photos/file_3.jpg", "DOC": "documents/file_4.pdf"}[request.url.params["file_id"]]
            return httpx.Response(200, json={"ok": True, "result": {"file_id": "x", "file_path": path}})
        served = {"/file/bot1:t/photos/file_3.jpg": photo, "/file/bot1:t/documents/file_4.pdf": pdf}[request.url.path]
        return httpx.Response(200, content=served, headers={"content-type": "application/octet-stream"})

    parsed = one_telegram(telegram_update(photo=[{**PHOTO_SIZES[1], "file_id": "PH"}])).attachments[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(bot_api)) as http:
        got = await fetch(http, Source(parsed, {"botToken": "1:t"}, "https://tg.example"), 10_000)
        assert (got.data, got.content_type) == (photo, "image/jpeg")
        untyped = await fetch(http, Source({"source": "telegram", "fileId": "DOC"}, {"botToken": "1:t"}, "https://tg.example"),
                              10_000)
        assert (untyped.data, untyped.content_type) == (pdf, "application/pdf")


def messaging(obj: str, message: dict[str, Any]) -> bytes:
    item = {"sender": {"id": "PSID"}, "recipient": {"id": "PAGE"}, "timestamp": 1764000000000, "message": message}
    return json.dumps({"object": obj, "entry": [{"id": "PAGE", "time": 1764000000000, "messaging": [item]}]}).encode()


def one_meta(body: bytes) -> InboundMessage:
    (message,), statuses = meta.parse("b", body)
    assert statuses == []
    return message


CDN = "https://cdn.fbsbx.com/v/t59.3654-21/{}?_nc_cat=1&oh=00_AfA&oe=6750"


@pytest.mark.parametrize(("obj", "vendor_type", "kind", "channel"), [
    ("page", "audio", "audio", "messenger"),  # a Messenger voice clip
    ("instagram", "image", "image", "instagram"),
    ("instagram", "file", "document", "instagram"),
])
def test_meta_messaging_files_become_their_kind_with_the_url_to_fetch(obj: str, vendor_type: str, kind: str,
                                                                        channel: str) -> None:
    url = CDN.format(f"{vendor_type}-1")
    message = one_meta(messaging(obj, {"mid": f"m_{vendor_type}", "attachments": [{"type": vendor_type, "payload": {"url": url}}]}))
    assert (message.channel, message.kind, message.content, message.external_id) == (channel, kind, "", f"m_{vendor_type}")
    assert message.attachments == ({"url": url, "source": "url", "kind": kind},)
    assert message.reply_to == {"page_id": "PAGE", "to": "PSID"}


def test_an_instagram_photo_with_text_keeps_the_text() -> None:
    url = CDN.format("photo")
    message = one_meta(messaging("instagram", {"mid": "ig_p", "text": "pot așa?", "attachments": [
        {"type": "image", "payload": {"url": url}}]}))
    assert (message.kind, message.content) == ("image", "pot așa?")


async def test_a_messenger_voice_clip_is_downloaded_from_its_url_with_the_type_the_cdn_names() -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + b"a" * 200
    url = CDN.format("audio-1")

    def cdn(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers  # a plain URL: no token goes to the CDN
        return httpx.Response(200, content=clip, headers={"content-type": "audio/mp4"})

    attachment = one_meta(messaging("page", {"mid": "m_a", "attachments": [{"type": "audio", "payload": {"url": url}}]})).attachments[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(cdn)) as http:
        got = await fetch(http, Source(attachment, {}, ""), 10_000)
    assert (got.data, got.content_type) == (clip, "audio/mp4")
