"""`explain` of a reply to a voice note whose transcript landed after the reply stopped waiting
for it (past MEDIA_WAIT_MS, while the model was asked): the prompt is rebuilt with what the reply
saw, without the late transcript, and says that the transcript came late. On the in-memory
stores, with the worker's own processor and media wait."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from agentstream.adapters.memory_stores import MemoryDirectory, memory_stores
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.events import Event, MediaTranscribed, MessageReceived, ReplyGenerated, new_event, parse_event
from agentstream.projections.context import ReplyContext
from agentstream.settings import Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.media_wait import MediaWait
from agentstream.streams.ports import EventLog, StateStore, VersionedDirectory
from agentstream.streams.explain import Explainer

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
LATE = "Vreau o programare mâine la 10."


class LateTranscript:
    """The offline responder; while it is asked, the media process appends the voice note's
    transcript (it lands after the reply's wait stopped, before the reply is logged)."""

    def __init__(self, store: EventLog) -> None:
        self.store, self.seen = store, []  # type: ignore[var-annotated]
        self.inbound: MessageReceived | None = None

    async def answer(self, ctx: ReplyContext, on_piece: Any = None) -> Answer:
        self.seen.append(ctx.message)
        assert self.inbound is not None
        said = new_event("MediaTranscribed", business_id=self.inbound.businessId, user_id=self.inbound.userId,
                         channel="whatsapp", occurred_at=T0,
                         payload={"sourceEventId": self.inbound.eventId, "index": 0, "text": LATE, "model": "w"})
        await self.store.append(said, external_id=f"transcript:{self.inbound.eventId}")
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


def stopped_waiting() -> MediaWait:
    """A wait whose deadline has passed after its first read (MEDIA_WAIT_MS elapsed)."""
    clock = iter(range(0, 1000, 60))
    return MediaWait(15_000, monotonic=lambda: float(next(clock)))


@dataclass
class Answered:
    store: EventLog
    directory: VersionedDirectory
    events: list[Event]
    responder: LateTranscript

    def explainer(self, settings: Settings | None = None) -> Explainer:
        return Explainer(self.store, self.directory, settings or Settings())


async def answered_late(business: str = "b", stores: tuple[EventLog, StateStore, VersionedDirectory] | None = None) -> Answered:
    """A voice note answered without its transcript, which lands during the model call; on the
    in-memory stores unless `stores` (log, projections, directory) are given."""
    store, projections, directory = stores or (*memory_stores(), MemoryDirectory())
    responder = LateTranscript(store)

    async def publish(reply: Event, first: bool = False) -> None:
        pass

    processor = ConversationProcessor(store, projections, directory, responder, publish, media_wait=stopped_waiting())
    voice = new_event("MessageReceived", business_id=business, user_id=f"u{uuid.uuid4().hex[:6]}", channel="whatsapp",
                      occurred_at=T0, payload={"content": "", "kind": "audio", "replyTo": {"to": "407"},
                                               "attachments": [{"id": "M1", "kind": "audio", "source": "meta",
                                                                "contentType": "audio/ogg"}]})
    voice = (await store.append(voice)).event  # type: ignore[assignment]
    responder.inbound = voice  # type: ignore[assignment]
    for _ in range(3):  # a reply whose one-transaction write lost to the transcript is appended on its own next
        try:
            await processor.handle(voice)
            break
        except Exception:  # noqa: BLE001 - the worker's retry, as process_with_retries does it
            continue
    return Answered(store, directory, await store.read(voice.streamId), responder)


async def test_a_transcript_that_lands_after_the_reply_stopped_waiting_is_not_in_the_explained_prompt() -> None:
    answered = await answered_late()
    events, responder = answered.events, answered.responder
    (said,) = [e for e in events if isinstance(e, MediaTranscribed)]
    (reply,) = [e for e in events if isinstance(e, ReplyGenerated)]
    assert said.seq < reply.seq, "the transcript is logged before the reply"
    assert all(LATE not in seen for seen in responder.seen), "the model never saw the late transcript"

    found = (await answered.explainer().explain(reply.eventId)).to_json()
    assert found["reproduced"] is True and found["differences"] == []
    assert LATE not in str(found["prompt"]) and "could not be transcribed" in found["prompt"][-1]["content"]
    assert found["context"]["media"] == []
    assert any(f"MediaTranscribed (seq {said.seq})" in note and "after the reply stopped waiting" in note
               for note in found["notes"]), found["notes"]


async def test_with_a_late_transcript_another_difference_is_still_named() -> None:
    answered = await answered_late()
    (reply,) = [e for e in answered.events if isinstance(e, ReplyGenerated)]
    smaller = Settings().model_copy(update={"prompt_budget_chars": 300})  # another build's prompt
    found = (await answered.explainer(smaller).explain(reply.eventId)).to_json()
    assert found["reproduced"] is False and LATE not in str(found["prompt"])
    assert found["differences"] and all("media" not in d for d in found["differences"])


async def test_a_reply_from_before_the_media_position_was_recorded_says_the_transcript_may_be_why() -> None:
    answered = await answered_late()
    store = answered.store
    (reply,) = [e for e in answered.events if isinstance(e, ReplyGenerated)]
    raw = reply.to_json_dict() | {"schemaVersion": 3}
    raw["payload"] = {k: v for k, v in raw["payload"].items() if k != "mediaUpToSeq"}
    old = parse_event(raw)  # as a v3 reply reads: no media position recorded
    assert isinstance(old, ReplyGenerated) and old.payload.mediaUpToSeq == 0
    explainer = answered.explainer()

    async def by_id(event_id: str) -> Event | None:
        return old if event_id == reply.eventId else await store.by_id(event_id)

    explainer._store.by_id = by_id  # type: ignore[method-assign]
    found = (await explainer.explain(reply.eventId)).to_json()
    assert found["reproduced"] is False and LATE in found["prompt"][-1]["content"]
    assert any("no media position" in d and "MediaTranscribed" in d for d in found["differences"]), found["differences"]


def older_reply(version: int, without: str) -> Event:
    """A reply written at `version`, before `without` was recorded, as this build reads it."""
    reply = new_event("ReplyGenerated", business_id="b", user_id="u", channel="sms",
                      payload={"content": "Da", "inReplyTo": "e1", "sessionId": "s", "model": "m"})
    raw = reply.to_json_dict() | {"schemaVersion": version}
    raw["payload"].pop(without, None)
    return parse_event(raw)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_older_replies_read_without_a_media_position(version: int) -> None:
    upcast = older_reply(version, "mediaUpToSeq")
    assert upcast.schemaVersion == 5 and upcast.payload.mediaUpToSeq == 0  # type: ignore[union-attr]
