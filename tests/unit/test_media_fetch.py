"""Fetching a customer's file from each vendor (httpx's mock transport stands in for them): the
requests each vendor needs, and how their answers are classified."""

from __future__ import annotations

import base64

import httpx
import pytest

from agentstream.adapters.media_fetch import FetchFailed, Retryable, Source, TooLarge, fetch

FILE = b"\xff\xd8" + b"x" * 1000


def vendor(request: httpx.Request) -> httpx.Response:
    path, auth = request.url.path, request.headers.get("authorization", "")
    if path == "/v21.0/M1":
        assert auth == "Bearer meta-token"
        return httpx.Response(200, json={"url": "https://lookaside.example/M1?x=1", "mime_type": "image/jpeg", "file_size": len(FILE)})
    if path == "/M1":
        assert auth == "Bearer meta-token"
        return httpx.Response(200, content=FILE, headers={"content-type": "application/octet-stream"})
    if path == "/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1":
        assert auth == "Basic " + base64.b64encode(b"AC1:twilio-token").decode()
        return httpx.Response(200, content=FILE, headers={"content-type": "image/jpeg"})
    if path == "/bot123:abc/getFile":
        assert request.url.params["file_id"] == "F1"
        return httpx.Response(200, json={"ok": True, "result": {"file_id": "F1", "file_path": "voice/file_1.oga"}})
    if path == "/file/bot123:abc/voice/file_1.oga":
        return httpx.Response(200, content=FILE)
    status = {"/gone": 404, "/busy": 503, "/denied": 403}.get(path, 404)
    return httpx.Response(status)


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient(transport=httpx.MockTransport(vendor)) as client:
        yield client  # type: ignore[misc]


async def test_each_vendor_is_asked_its_own_way(http: httpx.AsyncClient) -> None:
    meta = await fetch(http, Source({"source": "meta", "id": "M1"}, {"accessToken": "meta-token"},
                                    "https://graph.example/v21.0"), 10_000)
    assert (meta.data, meta.content_type) == (FILE, "image/jpeg")  # Graph's mime_type, not the CDN's
    url = "https://api.twilio.example/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    twilio = await fetch(http, Source({"source": "twilio", "url": url, "contentType": "image/jpeg"},
                                      {"accountSid": "AC1", "authToken": "twilio-token"}, ""), 10_000)
    assert twilio.data == FILE
    telegram = await fetch(http, Source({"source": "telegram", "fileId": "F1", "contentType": "audio/ogg"},
                                        {"botToken": "123:abc"}, "https://tg.example"), 10_000)
    assert (telegram.data, telegram.content_type) == (FILE, "audio/ogg")


async def test_what_may_pass_is_retryable_and_what_will_not_is_not(http: httpx.AsyncClient) -> None:
    for path, error in (("/gone", Retryable), ("/busy", Retryable), ("/denied", FetchFailed)):
        with pytest.raises(error) as raised:
            await fetch(http, Source({"source": "url", "url": f"https://cdn.example{path}"}, {}, ""), 10_000)
        assert "cdn.example" not in str(raised.value)  # no URL in an error (a Telegram one holds the token)
    assert not issubclass(FetchFailed, Retryable)
    with pytest.raises(FetchFailed):
        await fetch(http, Source({"source": "url", "url": "file:///etc/passwd"}, {}, ""), 10_000)


async def test_a_file_over_the_limit_stops_the_download(http: httpx.AsyncClient) -> None:
    with pytest.raises(TooLarge) as raised:
        await fetch(http, Source({"source": "meta", "id": "M1"}, {"accessToken": "meta-token"}, "https://graph.example/v21.0"), 100)
    assert raised.value.size == len(FILE)


async def test_a_timeout_is_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        with pytest.raises(Retryable, match="did not answer in time"):
            await fetch(client, Source({"source": "url", "url": "https://cdn.example/x"}, {}, ""), 100)
