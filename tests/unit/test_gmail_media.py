"""E-mail attachments: an e-mail's photos, audio and documents become files of their kind (its
text kept as the message's text), fetched through users.messages.attachments.get with the
mailbox's token, within the kind's size limit; an image the HTML shows in place (a signature's
logo) is not one of the customer's files."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from agentstream.adapters.channels import gmail
from agentstream.adapters.media_fetch import FetchFailed, Retryable, Source, TooLarge, fetch, gmail_creds

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def attachment_part(part_id: str, name: str, mime: str, attachment_id: str, size: int, inline_cid: str = "") -> dict[str, Any]:
    """A file part of a users.messages.get (format=full) payload, as Gmail gives it."""
    disposition = f'inline; filename="{name}"' if inline_cid else f'attachment; filename="{name}"'
    headers = [{"name": "Content-Type", "value": f'{mime}; name="{name}"'}, {"name": "Content-Disposition", "value": disposition},
               {"name": "Content-Transfer-Encoding", "value": "base64"}, {"name": "X-Attachment-Id", "value": f"f_{part_id}"},
               {"name": "Content-ID", "value": f"<{inline_cid or 'f_' + part_id}>"}]
    return {"partId": part_id, "mimeType": mime, "filename": name, "headers": headers,
            "body": {"attachmentId": attachment_id, "size": size}}


def gmail_with_files(mid: str, sender: str, text: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """A customer's e-mail with text (plain and HTML) and file parts (multipart/mixed)."""
    body = [{"partId": "0.0", "mimeType": "text/plain", "filename": "", "headers": [], "body": {"size": len(text), "data": b64(text.encode())}},
            {"partId": "0.1", "mimeType": "text/html", "filename": "", "headers": [],
             "body": {"size": 1, "data": b64(f"<div>{text}</div>".encode())}}]
    return {"id": mid, "threadId": f"T{mid}", "labelIds": ["INBOX", "UNREAD"], "internalDate": str(int(time.time() * 1000)),
            "payload": {"partId": "", "mimeType": "multipart/mixed", "filename": "", "body": {"size": 0}, "headers": [
                {"name": "From", "value": f"Client <{sender}>"}, {"name": "Subject", "value": "Ofertă"},
                {"name": "Message-ID", "value": f"<{mid}@mail.example>"}],
                "parts": [{"partId": "0", "mimeType": "multipart/alternative", "filename": "", "headers": [],
                           "body": {"size": 0}, "parts": body}, *files]}}


def test_an_email_with_text_and_a_pdf_is_a_document_with_its_text() -> None:
    msg = gmail_with_files("G9", "ana@example.com", "Bună ziua, vă trimit oferta.",
                           [attachment_part("1", "oferta.pdf", "application/pdf", "ANGjdJ-pdf", len(PDF))])
    inbound = gmail.message_to_inbound("b", msg)
    assert inbound is not None and (inbound.kind, inbound.content) == ("document", "Bună ziua, vă trimit oferta.")
    assert inbound.attachments == ({"id": "ANGjdJ-pdf", "messageId": "G9", "name": "oferta.pdf", "contentType": "application/pdf",
                                    "size": len(PDF), "source": "gmail", "kind": "document"},)


def test_each_file_is_of_the_kind_its_type_makes_and_a_signature_logo_is_not_a_file() -> None:
    files = [attachment_part("1", "logo.png", "image/png", "A-logo", 900, inline_cid="ii_logo"),
             attachment_part("2", "poza.jpg", "image/jpeg", "A-photo", 5000),
             attachment_part("3", "mesaj.m4a", "audio/mp4", "A-voice", 8000),
             attachment_part("4", "clip.mp4", "video/mp4", "A-video", 9000)]
    inbound = gmail.message_to_inbound("b", gmail_with_files("G10", "ana@example.com", "", files))
    assert inbound is not None and (inbound.kind, inbound.content) == ("image", "")
    assert [(a["id"], a["kind"]) for a in inbound.attachments] == [("A-photo", "image"), ("A-voice", "audio"),
                                                                   ("A-video", "attachment")]


def test_an_email_with_only_a_file_agentstream_does_not_read_is_unsupported_and_with_text_is_text() -> None:
    video = [attachment_part("1", "clip.mp4", "video/mp4", "A-video", 9000)]
    assert gmail.message_to_inbound("b", gmail_with_files("G11", "a@example.com", "", video)).kind == "unsupported"  # type: ignore[union-attr]
    assert gmail.message_to_inbound("b", gmail_with_files("G12", "a@example.com", "uite", video)).kind == "text"  # type: ignore[union-attr]


def gmail_api(files: dict[str, bytes], calls: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.headers.get("authorization") != "Bearer gm-token":
            return httpx.Response(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        _, _, rest = request.url.path.partition("/gmail/v1/users/me/messages/G9/attachments/")
        if rest == "busy":
            return httpx.Response(503)
        if rest not in files:
            return httpx.Response(400, json={"error": {"code": 400, "message": "Invalid attachment token"}})
        return httpx.Response(200, json={"size": len(files[rest]), "data": b64(files[rest])})
    return httpx.MockTransport(answer)


def source(attachment_id: str, token: str = "gm-token") -> Source:
    return Source({"source": "gmail", "id": attachment_id, "messageId": "G9", "contentType": "application/pdf", "kind": "document"},
                  {"accessToken": token}, "https://gmail.example")


async def test_an_attachment_is_fetched_by_its_ids_with_the_mailboxs_token_and_decoded() -> None:
    calls: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=gmail_api({"ANGjdJ-pdf": PDF}, calls)) as http:
        got = await fetch(http, source("ANGjdJ-pdf"), 10_000)
        assert (got.data, got.content_type) == (PDF, "application/pdf")
        assert calls[-1].url.path == "/gmail/v1/users/me/messages/G9/attachments/ANGjdJ-pdf"
        with pytest.raises(TooLarge) as raised:  # the decoded size counts, not the encoded body's
            await fetch(http, source("ANGjdJ-pdf"), len(PDF) - 1)
        assert raised.value.size == len(PDF)
        with pytest.raises(Retryable):
            await fetch(http, source("busy"), 10_000)
        with pytest.raises(FetchFailed) as refused:
            await fetch(http, source("ANGjdJ-pdf", token="revoked"), 10_000)
        assert not isinstance(refused.value, Retryable) and "401" in str(refused.value) and "gm-token" not in str(refused.value)


async def test_a_body_longer_than_what_the_limit_encodes_to_is_too_large_before_it_is_read() -> None:
    big = b"x" * 200_000
    async with httpx.AsyncClient(transport=gmail_api({"big": big}, [])) as http:
        with pytest.raises(TooLarge) as raised:
            await fetch(http, source("big"), 10_000)
    assert len(big) <= raised.value.size < len(big) + 100  # the body's declared length, as decoded bytes


class Tokens:
    """GmailAuth's `usable` as the media process calls it."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    async def usable(self, business_id: str) -> dict[str, str]:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


async def test_a_token_refresh_that_may_pass_is_retried_and_one_that_will_not_is_a_failure() -> None:
    from agentstream.adapters.channels.errors import PermanentError, RetryableError

    assert await gmail_creds(Tokens({"accessToken": "fresh"}), "b") == {"accessToken": "fresh"}
    with pytest.raises(Retryable):
        await gmail_creds(Tokens(RetryableError("Google token endpoint unreachable: ConnectError")), "b")
    with pytest.raises(FetchFailed) as raised:
        await gmail_creds(Tokens(PermanentError("cannot refresh the Gmail access token: missing refreshToken")), "b")
    assert not isinstance(raised.value, Retryable) and "missing refreshToken" in str(raised.value)


async def test_the_media_process_uses_the_stored_token_and_refreshes_one_about_to_expire() -> None:
    from agentstream.adapters.channels.gmail_auth import GmailAuth
    from tests.fakes.vendors import VendorServer
    from tests.unit.test_gmail_auth import GMAIL, MemoryStore

    with VendorServer() as vendors:
        vendors.state.google_tokens = ["new-1"]
        store = MemoryStore(GMAIL | {"tokenExpiry": str(int(time.time()) + 3600)})
        auth = GmailAuth(store, f"{vendors.base}/google/token")
        assert (await gmail_creds(auth, "b"))["accessToken"] == "old" and store.writes == []
        store.values["gmail"]["tokenExpiry"] = str(int(time.time()) + 10)
        assert (await gmail_creds(auth, "b"))["accessToken"] == "new-1" and len(store.writes) == 1
