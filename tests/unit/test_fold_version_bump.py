"""A conversation projection's new fold version meets a stream its older version had folded:
the worker folds it again once, as far as the older fold had got, whichever of the stream's
events comes first (the next new one, or an old one read again after an offset reset), and
never asks the model again. On moto; a history of 10 turns under `make test`, 30 under `make soak`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentstream.metrics import DYNAMODB_CALLS
from agentstream.projections.conversation import CONVERSATION
from agentstream.settings import Settings
from tests.sizes import size
from tests.unit.test_dead_letters import Worker

TURNS = size(10, 30)


def _calls() -> float:
    return sum(s.value for m in DYNAMODB_CALLS.collect() for s in m.samples if s.name.endswith("_total"))


@pytest.fixture
async def folded(moto_ddb: Any, moto_settings: Settings, biz: str, monkeypatch: pytest.MonkeyPatch) -> Worker:
    """A conversation of TURNS answered turns, then a deploy whose conversation fold is a version on."""
    worker = Worker(moto_ddb, moto_settings, biz, f"u{uuid.uuid4().hex[:6]}")
    for turn in range(TURNS):
        await worker.say(f"Întrebarea {turn}", turn * 2.0)
    await worker.drain()
    monkeypatch.setattr(type(CONVERSATION), "version", CONVERSATION.version + 1)
    worker.processor = worker.new_processor()  # the upgraded worker starts: nothing cached
    return worker


async def test_events_read_again_after_a_version_bump_are_folded_once(folded: Worker) -> None:
    asked = list(folded.responder.answered)
    before = _calls()
    for event in await folded.log():  # an offset reset: the whole stream from its first event
        await folded.deliver(event)
    calls = _calls() - before
    assert folded.responder.answered == asked, "every inbound already had its reply"
    # one pass: the log read once and, per inbound, the read for its reply and the writes (the
    # older fold's way, one pass per event, made thousands at 30 turns)
    assert calls <= 5 * TURNS, calls
    memory = await folded.memory()
    assert memory["version"] == CONVERSATION.version and int(memory["lastSeq"]) == 2 * TURNS
    assert await folded.verify() == []


async def test_a_new_message_after_a_version_bump_is_answered_from_the_whole_history(folded: Worker) -> None:
    inbound = await folded.say("Și mâine?", 2.0 * TURNS + 1)
    await folded.drain(after=inbound.seq - 1)
    assert (await folded.replies_to())[-1] == inbound.eventId
    memory = await folded.memory()
    assert memory["version"] == CONVERSATION.version and int(memory["lastSeq"]) == inbound.seq + 1
    assert await folded.verify() == []
