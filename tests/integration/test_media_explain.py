"""`agentstream explain` of a reply to a voice note whose transcript landed after the reply had
stopped waiting for it, on the real local DynamoDB server: reproduced, the late transcript named
in a note and not in the prompt."""

from __future__ import annotations

import json

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import MediaTranscribed, ReplyGenerated
from tests.integration.test_cli import cli
from tests.integration.world import World
from tests.unit.test_media_explain import LATE, answered_late


async def test_explain_reproduces_the_prompt_without_the_late_transcript(world: World) -> None:
    tables = world.settings.tables
    stores = (world.store, ProjectionStore(world.ddb, tables), BusinessDirectory(world.ddb, tables))
    events = (await answered_late("demo-salon", stores)).events
    (said,) = [e for e in events if isinstance(e, MediaTranscribed)]
    (reply,) = [e for e in events if isinstance(e, ReplyGenerated)]
    assert said.seq < reply.seq and reply.payload.mediaUpToSeq < said.seq

    printed = cli("explain", reply.eventId, "--json")
    assert printed.returncode == 0, printed.stdout
    data = json.loads(printed.stdout.strip().splitlines()[-1])
    assert data["reproduced"] is True and LATE not in json.dumps(data["prompt"], ensure_ascii=False)
    person = cli("explain", reply.eventId)
    assert "reproduced: yes" in person.stdout
    assert f"note: MediaTranscribed (seq {said.seq}) landed after the reply stopped waiting" in person.stdout, person.stdout
