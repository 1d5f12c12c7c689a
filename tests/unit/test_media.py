"""Customers' files: what the media process appends for each (kept, refused, failed after its
retries, transcribed), what a reply waits for and what the model is told, and how a transcript
becomes the message's text in the conversation and the facts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agentstream.adapters.media_fetch import Fetched, Retryable, Source, TooLarge
from agentstream.adapters.memory_stores import memory_stores
from agentstream.adapters.transcriber import Transcript
from agentstream.events import Event, MessageReceived, new_event
from agentstream.projections.base import FoldConfig, fold_events
from agentstream.projections.conversation import CONVERSATION
from agentstream.projections.facts import FACTS, current_facts
from agentstream.projections.kinds import needs_reply
from agentstream.projections.media_notes import canned_media_reply, message_text, outcome_of
from agentstream.retry import RetryPolicy
from agentstream.settings import MediaSettings
from agentstream.streams.media import MediaFetcher
from agentstream.streams.media_wait import MediaWait
from agentstream.streams.reply_policy import canned_answer, reply_context

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
FAST = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.001, wait_jitter=0, timeout=5)
VOICE = b"OggS" + b"\x00" * 200


def note(kind: str = "audio", content: str = "", ctype: str = "audio/ogg", **extra: Any) -> MessageReceived:
    attachment = {"id": "M1", "kind": kind, "source": "meta", "contentType": ctype, **extra}
    event = new_event("MessageReceived", business_id="b", user_id="u", channel="whatsapp", occurred_at=T0,
                      payload={"content": content, "kind": kind if kind in ("image", "audio", "document") else "unsupported",
                               "attachments": [attachment], "replyTo": {"phone_number_id": "PN", "to": "407"}})
    return event.with_seq(1)  # type: ignore[return-value]


class Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)


class Vendor:
    """Answers a fetch with the queued outcomes, then with the file."""

    def __init__(self, data: bytes = VOICE, ctype: str = "audio/ogg", trouble: list[Exception] | None = None) -> None:
        self.data, self.ctype, self.trouble, self.calls = data, ctype, list(trouble or []), 0

    async def __call__(self, source: Source, limit: int) -> Fetched:
        self.calls += 1
        if self.trouble:
            raise self.trouble.pop(0)
        if len(self.data) > limit:
            raise TooLarge(len(self.data))
        return Fetched(self.data, self.ctype)


class Whisper:
    model = "whisper-test"

    def __init__(self, text: str = "Bună, mă numesc Ana și vreau o programare.") -> None:
        self.text, self.calls = text, 0

    async def transcribe(self, data: bytes, content_type: str) -> Transcript:
        self.calls += 1
        return Transcript(self.text, self.model, {"seconds": 3})


async def source_of(inbound: MessageReceived, attachment: Any) -> Source:
    return Source(attachment, {"accessToken": "t"}, "http://graph")


async def run(inbound: MessageReceived, vendor: Vendor, settings: MediaSettings | None = None,
              whisper: Whisper | None = None) -> tuple[list[Event], Bucket]:
    log, _ = memory_stores()
    await log.append(inbound.with_seq(0), external_id="whatsapp:w1")
    bucket = Bucket()
    fetcher = MediaFetcher(log, bucket, vendor, source_of, settings or MediaSettings(), whisper, FAST)  # type: ignore[arg-type]
    logged = (await log.read(inbound.streamId))[0]
    await fetcher.handle(logged)  # type: ignore[arg-type]
    await fetcher.handle(logged)  # a record read again appends nothing more
    return await log.read(inbound.streamId), bucket


async def test_a_voice_note_is_kept_by_its_hash_and_transcribed_once() -> None:
    whisper = Whisper()
    events, bucket = await run(note(), Vendor(), whisper=whisper)
    assert [e.type for e in events] == ["MessageReceived", "MediaTranscribed", "MediaStored"]
    stored = events[2].payload
    sha = hashlib.sha256(VOICE).hexdigest()
    assert (stored.key, stored.sha256, stored.size, stored.kind) == (f"media/b/u/{sha}", sha, len(VOICE), "audio")
    assert bucket.objects[stored.key] == (VOICE, "audio/ogg") and whisper.calls == 1
    assert events[1].payload.text.startswith("Bună") and events[1].payload.sourceEventId == events[0].eventId


async def test_a_vendor_404_and_a_timeout_are_retried_then_the_file_is_kept() -> None:
    vendor = Vendor(trouble=[Retryable("Meta answered HTTP 404"), Retryable("the vendor did not answer in time")])
    events, _ = await run(note(kind="image", ctype="image/jpeg"), vendor)
    assert [e.type for e in events] == ["MessageReceived", "MediaStored"] and vendor.calls == 3


async def test_a_failure_on_every_attempt_is_recorded_with_its_attempts() -> None:
    vendor = Vendor(trouble=[Retryable("Meta answered HTTP 404")] * 5)
    events, bucket = await run(note(), vendor)
    assert [e.type for e in events] == ["MessageReceived", "MediaFailed"] and bucket.objects == {}
    failed = events[1].payload
    assert (failed.error, failed.attempts, failed.stage) == ("Meta answered HTTP 404", 3, "download")
    assert vendor.calls == 3  # the second read of the record found the failure logged


async def test_an_oversize_file_and_a_refused_type_are_refused_and_never_kept() -> None:
    small = MediaSettings(MEDIA_MAX_AUDIO_BYTES=100)
    events, bucket = await run(note(), Vendor(), small)
    assert [e.type for e in events] == ["MessageReceived", "MediaRefused"] and bucket.objects == {}
    assert events[1].payload.reason.startswith("too large: ")
    events, _ = await run(note(kind="document", ctype="application/x-msdownload"), Vendor(ctype="application/x-msdownload"))
    assert events[1].type == "MediaRefused" and events[1].payload.reason == "type not accepted: application/x-msdownload"
    events, _ = await run(note(kind="document", ctype=""), Vendor(b"MZ", "application/x-msdownload"))  # found on download
    assert events[1].type == "MediaRefused" and events[1].payload.contentType == "application/x-msdownload"


def media_event(event_type: str, source: MessageReceived, seq: int, **payload: Any) -> Event:
    return new_event(event_type, business_id="b", user_id="u", channel="whatsapp", occurred_at=T0 + timedelta(seconds=seq),
                     payload={"sourceEventId": source.eventId, **payload}).with_seq(seq)


def stored(source: MessageReceived, seq: int, kind: str = "audio") -> Event:
    return media_event("MediaStored", source, seq, key="media/b/u/ab", contentType="audio/ogg", size=3, sha256="ab" * 32,
                       kind=kind)


def test_the_model_reads_the_transcript_or_what_was_sent() -> None:
    voice = note()
    said = media_event("MediaTranscribed", voice, 2, text="Vreau o programare mâine.", model="w")
    assert message_text(voice, outcome_of(voice, [said, stored(voice, 3)])) == "[Voice note, transcribed:] Vreau o programare mâine."
    assert "could not be transcribed" in message_text(voice, outcome_of(voice, []))
    photo = note(kind="image", content="culoarea asta?", ctype="image/jpeg")
    kept = outcome_of(photo, [stored(photo, 2, "image")])
    assert message_text(photo, kept).splitlines() == ["culoarea asta?", "[The customer sent a photo, which you cannot see: ask them to describe it if it matters.]"]
    assert "given to you as an image" in message_text(photo, kept, images_as_input=True)


def test_a_transcript_after_the_reply_is_not_what_the_reply_was_given() -> None:
    voice = note()
    said = media_event("MediaTranscribed", voice, 5, text="Bună", model="w")
    assert outcome_of(voice, [said], before_seq=4).transcripts == [] and outcome_of(voice, [said], 6).transcripts == [said]


def test_a_video_or_a_refused_file_sent_alone_gets_a_reply_in_the_customers_language() -> None:
    video = note(kind="video", ctype="video/mp4")
    assert needs_reply(video)
    assert canned_media_reply(video, outcome_of(video, []), "ro").startswith("Îmi pare rău, nu pot deschide")
    voice = note()
    refused = media_event("MediaRefused", voice, 2, reason="too large: 20.0 MB > 16.0 MB")
    told = canned_media_reply(voice, outcome_of(voice, [refused]), "en")
    assert told is not None and "too large: 20.0 MB" in told
    assert "este prea mare: 20.0 MB > 16.0 MB" in canned_media_reply(voice, outcome_of(voice, [refused]), "ro")  # type: ignore[operator]
    ctx = reply_context(voice, {"conversation": CONVERSATION.empty("b", "u")}, {"language": "ro"}, "", [],
                        outcome_of(voice, [refused]))
    answer = canned_answer(ctx)
    assert answer is not None and answer.model == "media-notice" and "prea mare" in answer.content


def test_a_transcript_is_the_message_text_for_the_conversation_and_the_facts() -> None:
    voice = note()
    said = media_event("MediaTranscribed", voice, 2, text="Mă numesc Ana Pop.", model="w")
    config = FoldConfig(idle_minutes=60, timezone="Europe/Bucharest")
    memory, puts = fold_events(CONVERSATION, [voice, said, stored(voice, 3)], config, "b", "u")
    turn = memory["sessionContext"]["lastMessages"][-1]
    assert turn["content"] == "Mă numesc Ana Pop." and turn["eventId"] == voice.eventId
    (message,) = [p for p in puts if p.table == "messages"]
    assert message.item["content"] == "Mă numesc Ana Pop." and message.item["updatedSeq"] == 3 and message.item["seq"] == 1
    assert message.position == "updatedSeq" and message.item["metadata"]["transcript"] == "Mă numesc Ana Pop."
    assert [m["key"] for m in message.item["metadata"]["media"]] == ["media/b/u/ab"]
    facts, _ = fold_events(FACTS, [voice, said], config, "b", "u")
    assert ("name", "Ana Pop") in {(f["kind"], f["value"]) for f in current_facts(facts)}


class SlowLog:
    """The log as the wait reads it: the transcript shows up on the third read."""

    def __init__(self, later: list[Event]) -> None:
        self.later, self.reads = later, 0

    async def read_items(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        self.reads += 1
        return [e.to_json_dict() for e in self.later] if self.reads >= 3 else []


async def test_the_reply_waits_for_the_transcript_then_goes_on_without_it() -> None:
    voice = note()
    said, kept = media_event("MediaTranscribed", voice, 2, text="Bună", model="w"), stored(voice, 3)
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    found = await MediaWait(60_000, sleep=sleep).wait(SlowLog([said, kept]), voice)  # type: ignore[arg-type]
    assert [t.payload.text for t in found.outcome.transcripts] == ["Bună"] and found.head == 3 and len(waits) == 2
    clock = iter(range(0, 100))
    gone = await MediaWait(2_000, sleep=sleep, monotonic=lambda: float(next(clock))).wait(SlowLog([]), voice)  # type: ignore[arg-type]
    assert gone.outcome.transcripts == [] and gone.head == 1 and gone.reply is None


@pytest.mark.parametrize("ctype,allowed", [("audio/ogg; codecs=opus", True), ("image/jpeg", True), ("application/pdf", True),
                                           ("video/mp4", False), ("application/x-msdownload", False)])
def test_the_type_allow_list(ctype: str, allowed: bool) -> None:
    assert MediaSettings().allowed(ctype) is allowed


def test_the_offline_responder_acknowledges_files_and_asks_for_what_it_cannot_read() -> None:
    from agentstream.projections.offline import offline_reply

    state = {"conversation": CONVERSATION.empty("b", "u")}
    info = {"language": "ro", "name": "Salon Ana", "timezone": "Europe/Bucharest"}
    photo = note(kind="image", ctype="image/jpeg")
    said = offline_reply(reply_context(photo, state, info, "", [], outcome_of(photo, [stored(photo, 2, "image")])))
    assert "Am primit fotografia, dar nu o pot vedea aici" in said
    voice = note()
    heard = media_event("MediaTranscribed", voice, 2, text="Bună ziua, aveți loc mâine?", model="w")
    said = offline_reply(reply_context(voice, state, info, "", [], outcome_of(voice, [heard])))
    assert "Am ascultat mesajul vocal." in said and "nu îl pot asculta" not in said
    said = offline_reply(reply_context(voice, state, {**info, "language": "en"}, "", [], outcome_of(voice, [])))
    assert "I can't listen to it here: could you write what you need?" in said


async def test_a_model_that_accepts_images_is_given_the_kept_photo() -> None:
    from dataclasses import replace

    from agentstream.adapters.llm import OpenAIResponder
    from agentstream.bench.model_server import ModelBehaviour, ModelServer
    from agentstream.settings import Settings

    photo = note(kind="image", content="culoarea asta?", ctype="image/jpeg")
    ctx = reply_context(photo, {"conversation": CONVERSATION.empty("b", "u")}, {}, "", [],
                        outcome_of(photo, [stored(photo, 2, "image")]), images_as_input=True)
    assert ctx.extra["images"] == ["media/b/u/ab"] and "given to you as an image" in ctx.message

    async def load(key: str) -> tuple[bytes, str] | None:
        return (b"\xff\xd8jpeg", "image/jpeg") if key == "media/b/u/ab" else None

    with ModelServer(ModelBehaviour()) as model:
        settings = Settings(openai_api_key="sk-test", openai_base_url=model.base_url, openai_max_retries=0)  # type: ignore[call-arg]
        r = OpenAIResponder(settings, load)
        await r.answer(ctx)
        await r.answer(replace(ctx, extra={}))  # nothing to give: the prompt as it is
        await r.close()
        sent = [req["body"]["messages"][-1]["content"] for req in model.behaviour.requests]
    assert sent[0][0]["type"] == "text" and sent[0][0]["text"].startswith("culoarea asta?")
    assert sent[0][1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9hqcGVn"}}
    assert isinstance(sent[1], str)


def test_a_video_or_sticker_sent_with_a_caption_is_named_to_the_model_and_the_customer_asked_to_write() -> None:
    from agentstream.projections.offline import offline_reply

    state = {"conversation": CONVERSATION.empty("b", "u")}
    info = {"language": "ro", "name": "Salon Ana", "timezone": "Europe/Bucharest"}
    for kind, ctype, name in (("video", "video/mp4", "a video"), ("sticker", "image/webp", "a sticker"),
                              ("attachment", "application/zip", "a file")):
        captioned = note(kind=kind, ctype=ctype, content="Puteți face așa ceva?")
        assert canned_media_reply(captioned, outcome_of(captioned, []), "ro") is None  # the caption is answered
        ctx = reply_context(captioned, state, info, "", [], outcome_of(captioned, []))
        assert ctx.message.startswith("Puteți face așa ceva?\n")
        assert f"[The customer also sent {name}, which cannot be opened here" in ctx.message
        assert "un fișier pe care nu îl pot deschide aici" in offline_reply(ctx)
    plain = reply_context(note(kind="text", ctype="", content="Bună ziua").model_copy(
        update={"payload": note(kind="text", content="Bună ziua").payload.model_copy(update={"attachments": []})}),
        state, info, "", [], None)
    assert plain.message == "Bună ziua"  # a message with no file reads as before


def test_a_link_preview_is_not_a_file() -> None:
    shared = note(kind="fallback", ctype="", content="Uitați modelul: https://example.com/tuns")
    ctx = reply_context(shared, {"conversation": CONVERSATION.empty("b", "u")}, {"language": "ro"}, "", [],
                        outcome_of(shared, []))
    assert ctx.message == "Uitați modelul: https://example.com/tuns" and ctx.extra["files"] == []
