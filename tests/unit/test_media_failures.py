"""Each kind's own size limit (a photo, a document), and a voice note whose transcription fails
on every attempt: the file is kept, the failure is recorded once, the reply is not held up or
lost, the customer is asked to write, and the owner still gets the voice note."""

from __future__ import annotations

from typing import Any

import pytest

from agentstream.projections.base import FoldConfig, fold_events
from agentstream.projections.conversation import CONVERSATION
from agentstream.projections.media_notes import outcome_of
from agentstream.projections.offline import offline_reply
from agentstream.settings import MediaSettings
from agentstream.streams.media_wait import MediaWait
from agentstream.streams.reply_policy import canned_answer, reply_context
from tests.unit.test_media import VOICE, Vendor, note, run

PHOTO = b"\xff\xd8\xff\xe0" + b"p" * 2000
PDF = b"%PDF-1.4\n" + b"0" * 2000


@pytest.mark.parametrize(("kind", "ctype", "data", "limit"), [
    ("image", "image/jpeg", PHOTO, "MEDIA_MAX_IMAGE_BYTES"),
    ("document", "application/pdf", PDF, "MEDIA_MAX_DOCUMENT_BYTES"),
])
async def test_a_file_over_its_kinds_limit_is_refused_and_one_within_it_is_kept(kind: str, ctype: str, data: bytes,
                                                                                limit: str) -> None:
    tight = MediaSettings(**{limit: 1024})  # type: ignore[arg-type]
    events, bucket = await run(note(kind=kind, ctype=ctype), Vendor(data, ctype), tight)
    assert [e.type for e in events] == ["MessageReceived", "MediaRefused"] and bucket.objects == {}
    refused = events[1].payload
    assert (refused.reason, refused.kind, refused.size) == (f"too large: 2 KB > 1 KB", kind, len(data))
    told = canned_answer(reply_context(events[0], {"conversation": CONVERSATION.empty("b", "u")}, {"language": "ro"}, "",
                                       [], outcome_of(events[0], events)))  # type: ignore[arg-type]
    assert told is not None and "nu am putut accepta" in told.content and "este prea mare: 2 KB > 1 KB" in told.content

    other = "MEDIA_MAX_DOCUMENT_BYTES" if kind == "image" else "MEDIA_MAX_IMAGE_BYTES"  # another kind's limit is not its own
    events, bucket = await run(note(kind=kind, ctype=ctype), Vendor(data, ctype), MediaSettings(**{other: 1024}))  # type: ignore[arg-type]
    assert [e.type for e in events] == ["MessageReceived", "MediaStored"] and len(bucket.objects) == 1


async def test_a_file_whose_vendor_said_it_is_too_large_is_refused_without_a_download() -> None:
    vendor = Vendor(PDF, "application/pdf")
    events, _ = await run(note(kind="document", ctype="application/pdf", size=150 * 1024 * 1024 + 1), vendor)
    assert [e.type for e in events] == ["MessageReceived", "MediaRefused"] and vendor.calls == 0
    assert events[1].payload.reason == "too large: 150.1 MB > 100.0 MB"
    just_past = MediaSettings(MEDIA_MAX_DOCUMENT_BYTES=50_000)
    events, _ = await run(note(kind="document", ctype="application/pdf", size=50_014), vendor, just_past)
    assert events[1].payload.reason == "too large: 49 KB > 48 KB"  # never "48 KB > 48 KB"


class DeadWhisper:
    """A transcription endpoint that fails on every call."""

    model = "whisper-test"

    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(self, data: bytes, content_type: str) -> Any:
        self.calls += 1
        raise RuntimeError("Error code: 500 - {'error': {'message': 'injected'}}")


async def test_a_transcription_that_fails_for_good_keeps_the_voice_note_and_lets_the_reply_ask_to_write() -> None:
    whisper = DeadWhisper()
    events, bucket = await run(note(), Vendor(), whisper=whisper)  # type: ignore[arg-type]
    assert [e.type for e in events] == ["MessageReceived", "MediaFailed", "MediaStored"]
    failed, stored = events[1].payload, events[2].payload
    assert (failed.stage, failed.attempts, failed.index) == ("transcription", 3, 0) and "injected" in failed.error
    assert whisper.calls == 3, "the record read again does not try the endpoint again"
    assert bucket.objects[stored.key] == (VOICE, "audio/ogg")

    inbound, outcome = events[0], outcome_of(events[0], events)  # type: ignore[arg-type]
    assert outcome.settled([0]), "the reply does not wait out MEDIA_WAIT_MS for a transcript that will not come"
    found = await MediaWait(60_000).wait(Logged(events), inbound)  # type: ignore[arg-type]
    assert found.head == events[-1].seq and found.outcome.failed and found.reply is None

    state = {"conversation": CONVERSATION.empty("b", "u")}
    ctx = reply_context(inbound, state, {"language": "ro"}, "", [], outcome)  # type: ignore[arg-type]
    assert ctx.message == "[The customer sent a voice note that could not be transcribed: ask them to write instead.]"
    assert canned_answer(ctx) is None, "the model is asked: the customer gets a reply"
    said = offline_reply(reply_context(inbound, state, {"language": "ro", "name": "Salon"}, "", [], outcome))  # type: ignore[arg-type]
    assert "Am primit mesajul vocal, dar nu îl pot asculta aici: ne puteți scrie ce doriți?" in said

    memory, puts = fold_events(CONVERSATION, events, FoldConfig(idle_minutes=60, timezone="UTC"), "b", "u")
    (message,) = [p.item for p in puts if p.table == "messages"]  # what the owner's inbox shows
    assert message["metadata"]["media"] == [{"index": 0, "kind": "audio", "contentType": "audio/ogg", "size": len(VOICE),
                                             "key": stored.key}]
    assert "transcript" not in message["metadata"] and message["content"] == ""


class Logged:
    """The log as the reply's wait reads it."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def read_items(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return [e.to_json_dict() for e in self.events if e.seq > after_seq]
