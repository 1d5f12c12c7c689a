"""`explain` of a reply to a photo rebuilds the prompt with the photos given as the reply gave
them (ReplyGenerated v5 `imagesGiven`), whatever MODEL_ACCEPTS_IMAGES says when it is asked; a
reply from before v5 is rebuilt with today's setting, and says so. On moto's DynamoDB, with the
worker's own processor and media wait."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.llm import Answer, OfflineResponder
from agentstream.events import Event, MessageReceived, ReplyGenerated, new_event, parse_event
from agentstream.projections.context import ReplyContext
from agentstream.settings import MediaSettings, Settings
from agentstream.streams.conversations import ConversationProcessor
from agentstream.wiring import new_explainer
from tests.unit.test_media_explain import older_reply
from agentstream.streams.media_wait import MediaWait

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
PHOTO_SHA = hashlib.sha256(b"photo").hexdigest()


class Recording:
    """The offline responder, noting what each reply's context gave the model."""

    def __init__(self) -> None:
        self.images: list[list[str]] = []

    async def answer(self, ctx: ReplyContext, on_piece: Any = None) -> Answer:
        self.images.append(list(ctx.extra.get("images", [])))
        return await OfflineResponder().answer(ctx)

    async def close(self) -> None:
        pass


async def answered_photo(ddb: Any, settings: Settings, business: str, accepts_images: bool) -> tuple[EventStore, ReplyGenerated, Recording]:
    """A photo kept before its reply, answered by a worker whose model takes images (or not)."""
    store = EventStore(ddb, settings.tables.events)
    user = f"u{uuid.uuid4().hex[:6]}"
    photo = new_event("MessageReceived", business_id=business, user_id=user, channel="whatsapp", occurred_at=T0,
                      payload={"content": "culoarea asta?", "kind": "image", "replyTo": {"to": "407"},
                               "attachments": [{"id": "M1", "kind": "image", "source": "meta", "contentType": "image/jpeg"}]})
    photo = (await store.append(photo)).event
    key = f"media/{business}/{user}/{PHOTO_SHA}"
    kept = new_event("MediaStored", business_id=business, user_id=user, channel="whatsapp", occurred_at=T0,
                     payload={"sourceEventId": photo.eventId, "index": 0, "key": key, "contentType": "image/jpeg",
                              "size": 5, "sha256": PHOTO_SHA, "kind": "image"})
    await store.append(kept)
    responder = Recording()

    async def publish(reply: Event, first: bool = False) -> None:
        pass

    processor = ConversationProcessor(store, ProjectionStore(ddb, settings.tables), BusinessDirectory(ddb, settings.tables),
                                      responder, publish, media_wait=MediaWait(15_000, accepts_images))
    assert isinstance(photo, MessageReceived)
    await processor.handle(photo)
    (reply,) = [e for e in await store.read(photo.streamId) if isinstance(e, ReplyGenerated)]
    return store, reply, responder


def accepting(settings: Settings, accepts: bool) -> Settings:
    return settings.model_copy(update={"media": MediaSettings(MODEL_ACCEPTS_IMAGES=accepts)})  # type: ignore[call-arg]


@pytest.mark.parametrize("accepted_then", [True, False])
async def test_explain_gives_the_photos_as_the_reply_gave_them_whatever_the_setting_is_now(
        moto_ddb: Any, moto_settings: Settings, biz: str, accepted_then: bool) -> None:
    _, reply, responder = await answered_photo(moto_ddb, moto_settings, biz, accepted_then)
    given = [f"media/{biz}/{reply.userId}/{PHOTO_SHA}"] if accepted_then else []
    assert reply.schemaVersion == 5 and reply.payload.imagesGiven == given and responder.images == [given]

    for now in (True, False):
        found = (await new_explainer(moto_ddb, accepting(moto_settings, now)).explain(reply.eventId)).to_json()
        assert found["reproduced"] is True, (now, found["differences"])
        assert found["context"]["imagesGiven"] == given
        said = found["prompt"][-1]["content"]
        assert ("given to you as an image" in said) is accepted_then and ("which you cannot see" in said) is not accepted_then
        assert not any("MODEL_ACCEPTS_IMAGES" in note for note in found["notes"])


async def test_a_reply_from_before_the_photos_given_were_recorded_is_rebuilt_with_todays_setting(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    store, reply, _ = await answered_photo(moto_ddb, moto_settings, biz, True)
    raw = reply.to_json_dict() | {"schemaVersion": 4}
    raw["payload"] = {k: v for k, v in raw["payload"].items() if k != "imagesGiven"}
    old = parse_event(raw)  # as a v4 reply reads: nothing recorded
    assert isinstance(old, ReplyGenerated) and old.payload.imagesGiven is None

    async def by_id(event_id: str) -> Event | None:
        return old if event_id == reply.eventId else await store.by_id(event_id)

    for now, reproduced in ((True, True), (False, False)):
        explainer = new_explainer(moto_ddb, accepting(moto_settings, now))
        explainer._store.by_id = by_id  # type: ignore[method-assign]
        found = (await explainer.explain(reply.eventId)).to_json()
        assert found["reproduced"] is reproduced
        assert any(f"today's MODEL_ACCEPTS_IMAGES={str(now).lower()}" in note for note in found["notes"]), found["notes"]


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_older_replies_read_as_v5_without_the_photos_given(version: int) -> None:
    upcast = older_reply(version, "imagesGiven")
    assert upcast.schemaVersion == 5 and upcast.payload.imagesGiven is None  # type: ignore[union-attr]
