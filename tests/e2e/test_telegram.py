"""Telegram end to end: a Bot API update verified by its secret token header becomes a message in
the log, the worker answers it and delivery sends the reply through sendMessage (a local fake of
the Bot API); a wrong or missing secret changes nothing; a photo fetched through getFile and
kept. Plus the update parser's shapes."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from agentstream.adapters.channels import telegram
from agentstream.adapters.channels.errors import BadRequest
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, running_stack, set_credentials
from tests.fakes.telegram import TelegramServer
from tests.services import Endpoints

BOT = {"botToken": "123456:bot-token", "secretToken": "tg-secret-1"}
CHAT = 5550001


@pytest.fixture(scope="module")
def bot() -> Iterator[TelegramServer]:
    with TelegramServer(BOT["botToken"]) as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, bot: TelegramServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = isolated_env(endpoints, TELEGRAM_API_BASE_URL=bot.base)
    with running_stack(env, tmp_path_factory.mktemp("logs"), ("bridge", "worker", "gateway", "delivery", "media")) as running:
        set_credentials(running.env, "demo-salon", "telegram", BOT)
        yield running


def update(update_id: int, text: str, chat: int = CHAT) -> dict:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": int(time.time()), "text": text,
            "from": {"id": chat, "is_bot": False, "first_name": "Ana"}, "chat": {"id": chat, "type": "private"}}}


def post(stack: RunningStack, body: dict, secret: str | None = BOT["secretToken"], business: str = "demo-salon") -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return httpx.post(f"{stack.base_url}/webhooks/telegram/{business}", json=body, headers=headers)


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_an_update_is_answered_through_send_message(stack: RunningStack, bot: TelegramServer) -> None:
    resp = post(stack, update(1, "Bună! Aveți loc mâine la tuns?"))
    assert resp.status_code == 200 and resp.json() == {"received": 1, "statuses": 0}
    (sent,) = wait_for(lambda: [b for b in bot.sent("sendMessage") if b["chat_id"] == str(CHAT)])
    events = wait_for(lambda: [e for e in log_events(stack.env, f"demo-salon#{CHAT}") if e.type == "ReplyDelivered"])
    inbound, reply = [e for e in log_events(stack.env, f"demo-salon#{CHAT}") if e.type in ("MessageReceived", "ReplyGenerated")]
    assert inbound.channel == "telegram" and inbound.payload.externalId == f"{CHAT}:1"
    assert sent["text"] == reply.payload.content and reply.payload.inReplyTo == inbound.eventId
    assert events[0].payload.externalId.startswith(f"{CHAT}:")


def test_a_resent_update_is_one_message(stack: RunningStack) -> None:
    for _ in range(3):
        assert post(stack, update(2, "salut", chat=CHAT + 1)).status_code == 200
    wait_for(lambda: [e for e in log_events(stack.env, f"demo-salon#{CHAT + 1}") if e.type == "ReplyGenerated"])
    assert len([e for e in log_events(stack.env, f"demo-salon#{CHAT + 1}") if e.type == "MessageReceived"]) == 1


@pytest.mark.parametrize("secret, business", [("wrong", "demo-salon"), (None, "demo-salon"), ("tëst", "demo-salon"),
                                              (BOT["secretToken"], "nobody")])
def test_a_wrong_secret_or_business_is_one_403_and_changes_nothing(stack: RunningStack, secret: str | None, business: str) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret.encode()} if secret else {}
    resp = httpx.post(f"{stack.base_url}/webhooks/telegram/{business}", json=update(3, "hi", chat=CHAT + 2), headers=headers)
    assert resp.status_code == 403 and resp.json() == {"error": telegram.PROVIDER.webhooks[0].refusal}
    assert log_events(stack.env, f"demo-salon#{CHAT + 2}") == []


def test_updates_of_every_kind_parse() -> None:
    button = {"update_id": 9, "callback_query": {"id": "cb1", "from": {"id": 7}, "data": "book-thu-10",
                                                 "message": {"message_id": 4, "chat": {"id": 7}}}}
    reaction = {"update_id": 10, "message_reaction": {"chat": {"id": 7}, "message_id": 1001, "user": {"id": 7}, "date": 1,
                                                      "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}
    place = update(11, "") | {"message": {**update(11, "")["message"], "location": {"latitude": 44.43, "longitude": 26.1}}}
    del place["message"]["text"]
    parsed = [telegram.parse("b", json.dumps(u).encode())[0] for u in (button, reaction, place)]
    assert [(m.kind, m.content, m.payload_id, m.reacts_to) for m in parsed] == [
        ("button", "book-thu-10", "book-thu-10", None), ("reaction", "👍", None, "7:1001"),
        ("location", "Location: 44.43, 26.1", None, None)]
    assert telegram.parse("b", b'{"update_id": 12, "edited_message": {}}') == []
    with pytest.raises(BadRequest):
        telegram.parse("b", b'{"update_id": 13, "message": {"chat": {}}}')


@pytest.mark.soak
def test_a_photo_is_fetched_through_get_file_kept_and_answered(stack: RunningStack, bot: TelegramServer) -> None:
    """The largest of the photo's sizes is fetched (getFile, then the file server), kept by its
    hash, and the reply to its caption goes out through sendMessage."""
    chat = CHAT + 1000 + uuid.uuid4().int % 10**6  # a chat of its own for each run
    photo = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes + bytes(range(256)) * 8
    bot.files[f"PH-large-{chat}"] = (f"photos/file_{chat}.jpg", photo)
    bot.files[f"PH-small-{chat}"] = (f"photos/file_{chat}_s.jpg", photo[:300])
    body = update(7, "", chat=chat)
    del body["message"]["text"]
    body["message"] |= {"caption": "culoarea asta?", "photo": [
        {"file_id": f"PH-small-{chat}", "file_unique_id": "s", "file_size": 300, "width": 90, "height": 90},
        {"file_id": f"PH-large-{chat}", "file_unique_id": "l", "file_size": len(photo), "width": 800, "height": 800}]}
    assert post(stack, body).status_code == 200
    (sent,) = wait_for(lambda: [b for b in bot.sent("sendMessage") if b["chat_id"] == str(chat)], timeout=120)
    events = log_events(stack.env, f"demo-salon#{chat}")
    inbound = next(e for e in events if e.type == "MessageReceived")
    kept = next(e for e in events if e.type == "MediaStored")
    reply = next(e for e in events if e.type == "ReplyGenerated")
    assert (inbound.payload.kind, inbound.payload.content) == ("image", "culoarea asta?")
    assert (kept.payload.kind, kept.payload.contentType, kept.payload.size) == ("image", "image/jpeg", len(photo))
    assert kept.payload.sha256 == hashlib.sha256(photo).hexdigest() and [d for d in bot.downloads if str(chat) in d] == [f"photos/file_{chat}.jpg"]
    assert kept.seq < reply.seq and sent["text"] == reply.payload.content
