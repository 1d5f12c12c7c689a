"""Voice notes, photos and documents end to end with real processes: a signed WhatsApp webhook,
the fake Graph API serving the file, the fake transcription endpoint, the transcript in the log
and in the prompt `explain` rebuilds, the reply delivered; an oversize file and a refused type
told to the customer; a vendor's 404 and a timeout retried, then recorded; `forget` deleting the
customer's objects from the bucket and counting them in its receipt; `replay --verify` clean.
Also a photo given to a model that takes images and shown to the owner, a transcription that
fails for good, and an e-mail's attachments fetched by id within their limits."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentstream.adapters.dynamo.client import dynamodb_client, s3_client
from agentstream.adapters.media_bucket import MediaBucket, customer_prefix
from agentstream.settings import Settings
from agentstream.wiring import new_explainer
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, set_credentials
from agentstream.bench.model_server import ModelBehaviour, ModelServer
from tests.fakes.openai_audio import AudioServer
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints
from tests.unit.test_gmail_media import attachment_part, gmail_with_files

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1200)]  # a busy machine: the stack starts within the first test
META = {"appSecret": "app-secret-m", "verifyToken": "verify-m", "accessToken": "meta-token-m"}
GMAIL = {"pushToken": "push-m", "accessToken": "gmail-token-m"}
VOICE = b"OggS" + bytes(range(256)) * 40  # ~10 KB
LIMIT = 50_000


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def whisper() -> Iterator[AudioServer]:
    with AudioServer() as server:
        yield server


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer(ModelBehaviour()) as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, vendors: VendorServer, whisper: AudioServer, model: ModelServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The processes, with a model that takes images (MODEL_ACCEPTS_IMAGES)."""
    env = isolated_env(endpoints, **vendors.env(), **whisper.env(), MEDIA_WAIT_MS="120000", MEDIA_DOWNLOAD_TIMEOUT="8",
                       MEDIA_RETRY_WAIT="0.2", MEDIA_ATTEMPTS="3", MEDIA_MAX_AUDIO_BYTES=str(LIMIT),
                       MEDIA_MAX_IMAGE_BYTES=str(LIMIT), OPENAI_API_KEY="sk-test-not-real", OPENAI_BASE_URL=model.base_url,
                       OPENAI_MODEL="local-model", OPENAI_TIMEOUT="120", MODEL_ACCEPTS_IMAGES="true")
    with running_stack(env, tmp_path_factory.mktemp("logs"), ("bridge", "worker", "gateway", "delivery", "media")) as running:
        set_credentials(running.env, "demo-salon", "meta", META)
        set_credentials(running.env, "demo-salon", "gmail", GMAIL)
        yield running


def customer() -> str:
    """A phone number of its own for each run (a repeated run must not meet an erased or answered one)."""
    return f"4072{uuid.uuid4().int % 10**7:07d}"


def wait_for(predicate, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def send_file(stack: RunningStack, wa_id: str, mid: str, kind: str, media: dict[str, Any]) -> None:
    message = {"from": wa_id, "id": mid, "timestamp": str(int(time.time())), "type": kind, kind: media}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN1"}, "contacts": [{"wa_id": wa_id}],
        "messages": [message]}}]}]}
    raw = json.dumps(body).encode()
    sig = "sha256=" + hmac.new(META["appSecret"].encode(), raw, hashlib.sha256).hexdigest()
    resp = httpx.post(f"{stack.base_url}/webhooks/meta/demo-salon", content=raw,
                      headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text


def delivered(stack: RunningStack, stream: str) -> list[Any]:
    """The stream's events once its reply is delivered."""
    return wait_for(lambda: (events := log_events(stack.env, stream)) and any(e.type == "ReplyDelivered" for e in events)
                    and events)


def sent_to(vendors: VendorServer, wa_id: str) -> list[str]:
    return [r.json["text"]["body"] for r in vendors.state.sent("/messages") if r.json and r.json.get("to") == wa_id
            and r.json.get("type") == "text"]


def with_env(stack: RunningStack, make: Any) -> Any:
    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        return run_sync(make(Settings()))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def explained(stack: RunningStack, reply_id: str) -> dict[str, Any]:
    async def run(s: Settings) -> dict[str, Any]:
        async with dynamodb_client(s) as ddb:
            return (await new_explainer(ddb, s).explain(reply_id)).to_json()
    return with_env(stack, run)


def bucket_keys(stack: RunningStack, wa_id: str) -> list[str]:
    async def run(s: Settings) -> list[str]:
        async with s3_client(s) as s3:
            return await MediaBucket(s3, s.media.bucket).keys(customer_prefix("demo-salon", wa_id))
    return with_env(stack, run)


def cli(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentstream.cli", *args], env={**os.environ, **stack.env},
                          capture_output=True, text=True, timeout=180)


def signed_in(stack: RunningStack, business: str = "demo-salon") -> httpx.Client:
    """The owner's browser, signed in to the inbox with the business's API key."""
    browser = httpx.Client(base_url=stack.base_url, timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/inbox").text).group(1)  # type: ignore[union-attr]
    signed = browser.post("/inbox/sign-in", data={"csrf": csrf, "apiKey": stack.api_keys[business], "name": "Ana"})
    assert signed.status_code == 303, signed.text
    return browser


def owner_sees(stack: RunningStack, reply: Any, kept: Any, whisper: AudioServer) -> None:
    """The inbox shows an audio player with the transcript; the file comes through the gateway to
    the signed-in owner only, never as a bucket URL."""
    url = f"/inbox/conversations/{reply.payload.sessionId}/media/{kept.payload.sourceEventId}/0"
    with contextlib.closing(signed_in(stack)) as browser:
        page = wait_for(lambda: (p := browser.get(f"/inbox/conversations/{reply.payload.sessionId}").text)
                        and "<audio" in p and p)
        assert f'src="{url}"' in page and whisper.state.text in page and "media-" not in page.split("<audio")[1][:300]
        served = browser.get(url)
        assert served.status_code == 200 and served.content == VOICE
        assert served.headers["x-content-type-options"] == "nosniff" and served.headers["content-type"] == "audio/ogg"
    assert httpx.get(f"{stack.base_url}{url}").status_code == 403  # no session, no file


def test_a_voice_note_is_transcribed_answered_explained_and_forgotten(stack: RunningStack, vendors: VendorServer,
                                                                      whisper: AudioServer, tmp_path: Path) -> None:
    wa_id = customer()
    stream = f"demo-salon#{wa_id}"
    vendors.state.media[f"VOICE-{wa_id}"] = (VOICE, "audio/ogg")
    send_file(stack, wa_id, f"wamid.V{wa_id}", "audio", {"id": f"VOICE-{wa_id}", "mime_type": "audio/ogg", "voice": True})
    events = delivered(stack, stream)
    by_type = {e.type: e for e in events}
    said, kept, reply = by_type["MediaTranscribed"], by_type["MediaStored"], by_type["ReplyGenerated"]
    assert said.payload.text == whisper.state.text and said.payload.model == "whisper-test"
    assert whisper.state.requests[-1]["size"] == len(VOICE) and whisper.state.requests[-1]["model"] == "whisper-test"
    assert kept.payload.sha256 == hashlib.sha256(VOICE).hexdigest() and kept.payload.size == len(VOICE)
    assert said.seq < reply.seq and sent_to(vendors, wa_id) == [reply.payload.content]
    explanation = explained(stack, reply.eventId)
    assert explanation["reproduced"], explanation["differences"]
    assert whisper.state.text in explanation["prompt"][-1]["content"]
    assert bucket_keys(stack, wa_id) == [kept.payload.key]
    owner_sees(stack, reply, kept, whisper)
    verified = cli(stack, "replay", "--business", "demo-salon", "--user", wa_id, "--verify")
    assert verified.returncode == 0 and "no differences" in verified.stderr, verified.stdout + verified.stderr
    receipt_path = tmp_path / "receipt.json"
    erased = cli(stack, "forget", "--business", "demo-salon", "--user", wa_id, "--proof", str(receipt_path))
    assert erased.returncode == 0, erased.stdout + erased.stderr
    receipt = json.loads(receipt_path.read_text())
    assert receipt["deleted"]["media"]["count"] == 1 and receipt["left"]["media"] == 0
    assert bucket_keys(stack, wa_id) == []


def test_an_oversize_voice_note_and_a_refused_type_are_told_to_the_customer(stack: RunningStack, vendors: VendorServer) -> None:
    big, odd = customer(), customer()
    vendors.state.media[f"VOICE-{big}"] = (b"OggS" + b"\x01" * (LIMIT + 10), "audio/ogg")
    send_file(stack, big, f"wamid.B{big}", "audio", {"id": f"VOICE-{big}", "mime_type": "audio/ogg", "voice": True})
    send_file(stack, odd, f"wamid.X{odd}", "document", {"id": f"EXE-{odd}", "mime_type": "application/x-msdownload",
                                                        "filename": "a.exe"})
    for wa_id in (big, odd):
        events = delivered(stack, f"demo-salon#{wa_id}")
        (refused,) = [e for e in events if e.type == "MediaRefused"]
        assert not [e for e in events if e.type == "MediaStored"]
        (told,) = sent_to(vendors, wa_id)
        assert "nu am putut accepta" in told  # demo-salon writes Romanian
        assert ("prea mare" if wa_id == big else "application/x-msdownload") in told, told
        assert refused.payload.reason.startswith("too large" if wa_id == big else "type not accepted")
    assert not [r for r in vendors.state.requests if r.path.endswith(f"/graph-media/EXE-{odd}")], "a refused type is never downloaded"


def test_a_404_and_a_timeout_are_retried_and_a_file_that_never_comes_is_recorded(stack: RunningStack, vendors: VendorServer) -> None:
    late, gone = customer(), customer()
    vendors.state.media[f"IMG-{late}"] = (b"\xff\xd8\xff" + b"\x00" * 500, "image/jpeg")
    vendors.state.media_trouble[f"IMG-{late}"] = ["404", "hang"]
    vendors.state.media[f"IMG-{gone}"] = (b"\xff\xd8\xff", "image/jpeg")
    vendors.state.media_trouble[f"IMG-{gone}"] = ["hang", "404", "404"]
    send_file(stack, late, f"wamid.L{late}", "image", {"id": f"IMG-{late}", "mime_type": "image/jpeg", "caption": "culoarea asta?"})
    send_file(stack, gone, f"wamid.G{gone}", "image", {"id": f"IMG-{gone}", "mime_type": "image/jpeg"})
    kept = delivered(stack, f"demo-salon#{late}")
    assert [e.type for e in kept if e.type.startswith("Media")] == ["MediaStored"]
    assert len([r for r in vendors.state.requests if r.path.endswith(f"/graph-media/IMG-{late}")]) == 3
    events = delivered(stack, f"demo-salon#{gone}")
    (failed,) = [e for e in events if e.type == "MediaFailed"]
    assert failed.payload.attempts == 3 and failed.payload.stage == "download"
    assert failed.payload.error in ("Meta answered HTTP 404", "the vendor did not answer in time")  # a busy machine may time out
    reply = next(e for e in events if e.type == "ReplyGenerated")
    assert failed.seq < reply.seq and sent_to(vendors, gone) == [reply.payload.content]


def test_the_owner_gets_a_document_as_an_attachment_and_another_business_gets_nothing(stack: RunningStack,
                                                                                      vendors: VendorServer) -> None:
    wa_id = customer()
    pdf = b"%PDF-1.4\n" + b"0" * 2000
    vendors.state.media[f"DOC-{wa_id}"] = (pdf, "application/pdf")
    send_file(stack, wa_id, f"wamid.D{wa_id}", "document", {"id": f"DOC-{wa_id}", "mime_type": "application/pdf",
                                                            "filename": "oferta.pdf"})
    events = delivered(stack, f"demo-salon#{wa_id}")
    kept = next(e for e in events if e.type == "MediaStored")
    reply = next(e for e in events if e.type == "ReplyGenerated")
    explanation = explained(stack, reply.eventId)
    assert "a document (oferta.pdf), which you cannot read" in explanation["prompt"][-1]["content"]
    url = f"/inbox/conversations/{reply.payload.sessionId}/media/{kept.payload.sourceEventId}/0"
    with contextlib.closing(signed_in(stack)) as browser:
        wait_for(lambda: f'href="{url}" download' in browser.get(f"/inbox/conversations/{reply.payload.sessionId}").text)
        served = browser.get(url)
        assert served.content == pdf and served.headers["content-disposition"].startswith("attachment;")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert browser.get(url.replace("/media/", "/media/x").rsplit("/", 1)[0] + "/0").status_code == 404
        assert browser.get(url[:-1] + "1").status_code == 404
    with contextlib.closing(signed_in(stack, "demo-restaurant")) as other:
        assert other.get(url).status_code == 404


def test_a_photo_is_given_to_the_model_recorded_explained_and_shown_to_the_owner(stack: RunningStack, vendors: VendorServer,
                                                                                 model: ModelServer) -> None:
    """The worker reads the kept photo from the bucket and gives it to the model (it takes
    images) as a data URL; the reply records it, explain shows it, the owner sees it inline."""
    wa_id = customer()
    photo = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes + bytes(range(256)) * 4
    vendors.state.media[f"IMG-{wa_id}"] = (photo, "image/jpeg")
    send_file(stack, wa_id, f"wamid.P{wa_id}", "image", {"id": f"IMG-{wa_id}", "mime_type": "image/jpeg",
                                                         "caption": f"culoarea asta? {wa_id}"})
    events = delivered(stack, f"demo-salon#{wa_id}")
    kept = next(e for e in events if e.type == "MediaStored")
    reply = next(e for e in events if e.type == "ReplyGenerated")
    assert reply.payload.imagesGiven == [kept.payload.key] and kept.payload.kind == "image"
    (asked,) = [r["body"]["messages"][-1]["content"] for r in model.behaviour.requests
                if wa_id in str(r["body"]["messages"][-1]["content"])]
    assert asked[0]["type"] == "text" and "given to you as an image" in asked[0]["text"]
    assert asked[1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}}
    explanation = explained(stack, reply.eventId)
    assert explanation["reproduced"], explanation["differences"]
    assert explanation["context"]["imagesGiven"] == [kept.payload.key] and explanation["prompt"][-1]["content"] == asked[0]["text"]
    url = f"/inbox/conversations/{reply.payload.sessionId}/media/{kept.payload.sourceEventId}/0"
    with contextlib.closing(signed_in(stack)) as browser:
        wait_for(lambda: f'<img class="file" src="{url}"' in browser.get(f"/inbox/conversations/{reply.payload.sessionId}").text)
        served = browser.get(url)
        assert served.content == photo and served.headers["content-type"] == "image/jpeg"
        assert served.headers["content-disposition"].startswith("inline;") and served.headers["x-content-type-options"] == "nosniff"


def test_a_voice_note_whose_transcription_fails_for_good_is_kept_answered_and_shown(stack: RunningStack, vendors: VendorServer,
                                                                                    whisper: AudioServer) -> None:
    """The transcription endpoint fails every attempt: MediaFailed once, the voice note kept,
    the reply (the model told to ask the customer to write) delivered; the owner gets the player."""
    wa_id = customer()
    voice = VOICE + uuid.uuid4().bytes
    vendors.state.media[f"VOICE-{wa_id}"] = (voice, "audio/ogg")
    before = len(whisper.state.requests)
    whisper.state.fail_next = 3  # MEDIA_ATTEMPTS
    send_file(stack, wa_id, f"wamid.F{wa_id}", "audio", {"id": f"VOICE-{wa_id}", "mime_type": "audio/ogg", "voice": True})
    events = delivered(stack, f"demo-salon#{wa_id}")
    assert not [e for e in events if e.type == "MediaTranscribed"]
    (failed,) = [e for e in events if e.type == "MediaFailed"]
    kept = next(e for e in events if e.type == "MediaStored")
    reply = next(e for e in events if e.type == "ReplyGenerated")
    assert (failed.payload.stage, failed.payload.attempts) == ("transcription", 3) and len(whisper.state.requests) - before == 3
    assert failed.seq < kept.seq < reply.seq and sent_to(vendors, wa_id) == [reply.payload.content]
    explanation = explained(stack, reply.eventId)
    assert explanation["reproduced"], explanation["differences"]
    assert "could not be transcribed: ask them to write instead" in explanation["prompt"][-1]["content"]
    url = f"/inbox/conversations/{reply.payload.sessionId}/media/{kept.payload.sourceEventId}/0"
    with contextlib.closing(signed_in(stack)) as browser:
        page = wait_for(lambda: (p := browser.get(f"/inbox/conversations/{reply.payload.sessionId}").text) and f'src="{url}"' in p and p)
        assert "<audio" in page and 'class="transcript"' not in page
        assert browser.get(url).content == voice


def push_gmail(stack: RunningStack, mid: str) -> None:
    data = base64.b64encode(json.dumps({"emailAddress": "salon@example.com", "historyId": 100}).encode()).decode()
    push = {"message": {"data": data, "messageId": f"p-{mid}"}, "subscription": "projects/x/subscriptions/y"}
    resp = httpx.post(f"{stack.base_url}/webhooks/gmail/demo-salon", params={"token": GMAIL["pushToken"]}, json=push)
    assert resp.status_code == 200, resp.text


def test_an_emails_attachments_are_fetched_by_id_within_their_limits_and_its_text_is_kept(stack: RunningStack,
                                                                                           vendors: VendorServer) -> None:
    """An e-mail with text, a PDF and a photo over the image limit: the PDF is fetched through
    users.messages.attachments.get and kept, the photo refused without a download, the text is
    the message's; the model is told both, and the answer goes out in the thread."""
    sender, mid = f"c{uuid.uuid4().hex[:10]}@example.com", f"GM{uuid.uuid4().hex[:10]}"
    pdf = b"%PDF-1.4\n" + uuid.uuid4().bytes + b"0" * 3000
    vendors.state.gmail_attachments |= {f"PDF-{mid}": pdf, f"BIG-{mid}": b"\xff\xd8" + b"0" * (LIMIT + 10)}
    vendors.state.gmail_messages[mid] = gmail_with_files(mid, sender, "Bună ziua, vă trimit oferta și o poză.", [
        attachment_part("1", "oferta.pdf", "application/pdf", f"PDF-{mid}", len(pdf)),
        attachment_part("2", "poza.jpg", "image/jpeg", f"BIG-{mid}", LIMIT + 12)])
    vendors.state.gmail_history.append(mid)
    push_gmail(stack, mid)
    events = delivered(stack, f"demo-salon#{sender}")
    inbound = next(e for e in events if e.type == "MessageReceived")
    (kept,) = [e for e in events if e.type == "MediaStored"]
    (refused,) = [e for e in events if e.type == "MediaRefused"]
    assert (inbound.payload.kind, inbound.payload.content) == ("document", "Bună ziua, vă trimit oferta și o poză.")
    assert (kept.payload.index, kept.payload.sha256, kept.payload.contentType) == (0, hashlib.sha256(pdf).hexdigest(), "application/pdf")
    assert refused.payload.index == 1 and refused.payload.reason.startswith("too large: ")
    fetched = [r for r in vendors.state.requests if f"/messages/{mid}/attachments/" in r.path]
    assert [r.path.rsplit("/", 1)[1] for r in fetched] == [f"PDF-{mid}"]  # the photo is never downloaded
    assert fetched[0].headers["authorization"] == f"Bearer {GMAIL['accessToken']}"
    reply = next(e for e in events if e.type == "ReplyGenerated")
    said = explained(stack, reply.eventId)["prompt"][-1]["content"]
    assert said.startswith("Bună ziua, vă trimit oferta și o poză.") and "a document (oferta.pdf), which you cannot read" in said
    assert "a photo that was not accepted (too large: " in said
    (sent,) = [r for r in vendors.state.sent("/messages/send") if sender in base64.urlsafe_b64decode(r.json["raw"]).decode()]
    assert sent.json["threadId"] == f"T{mid}"
