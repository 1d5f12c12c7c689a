"""A vendor's replayed webhook of a message `forget` erased appends nothing: the tombstone keeps
the hashes of the erased messages' ids (never the ids), and a new message of the same customer
is taken as usual."""

from __future__ import annotations

import uuid
from typing import Any

from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.ingest import InboundMessage, Ingestor
from agentstream.settings import Settings
from agentstream.streams.forget import forget
from agentstream.wiring import forget_stores


async def test_a_replayed_webhook_after_forget_does_not_restore_the_erased_message(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    user = f"+4072{uuid.uuid4().int % 10**7:07d}"
    store = EventStore(moto_ddb, moto_settings.tables.events)
    ingest = Ingestor(store)
    sent = InboundMessage(biz, user, "whatsapp", "wamid.ERASED-1", "Sunt Ana Popescu")
    assert not (await ingest.ingest(sent)).duplicate
    await forget(forget_stores(moto_ddb, moto_settings), moto_settings, biz, user)

    tomb = (await moto_ddb.get_item(TableName=moto_settings.tables.events,
                                    Key={"streamId": {"S": f"forgotten#{biz}#{user}"}, "seq": {"N": "0"}}))["Item"]
    assert len(tomb["erasedIds"]["SS"]) == 1 and "wamid" not in str(tomb)

    replayed = await ingest.ingest(sent)
    assert replayed.duplicate and await store.head(f"{biz}#{user}") == 0, "the erased message stays erased"

    fresh = await ingest.ingest(InboundMessage(biz, user, "whatsapp", "wamid.NEW-2", "Bună, o întrebare"))
    assert not fresh.duplicate and fresh.event.seq == 1
    assert [e.payload.content for e in await store.read(f"{biz}#{user}")] == ["Bună, o întrebare"]
