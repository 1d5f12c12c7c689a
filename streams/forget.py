"""`forget`: erase one customer of one business from the log and every projection.

A tombstone (PK `forgotten#<business>#<user>` in the events table) stays behind, so a late
Kafka record never brings the user back through the worker; a replay has no events left to
fold. Kafka keeps its copies until the topics' retention: the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentstream.adapters.dynamo import batch_write, query_all, scan_all, to_item
from agentstream.adapters.event_store import IDEM_PREFIX, TOMBSTONE_PREFIX
from agentstream.adapters.projection_store import sessions_of_user
from agentstream.adapters.tables import MESSAGES_BY_SESSION
from agentstream.events import iso, utc_now
from agentstream.settings import Settings


def tombstone_key(business_id: str, user_id: str) -> dict[str, Any]:
    return {"streamId": f"{TOMBSTONE_PREFIX}{business_id}#{user_id}", "seq": 0}


@dataclass
class ForgetReport:
    events: int = 0
    idempotency_records: int = 0
    sessions: int = 0
    messages: int = 0
    memory: int = 0
    still_in_kafka: list[str] = field(default_factory=list)


async def _delete(ddb: Any, table: str, keys: list[dict[str, Any]]) -> int:
    for start in range(0, len(keys), 25):
        await batch_write(ddb, {table: [{"DeleteRequest": {"Key": to_item(k)}} for k in keys[start:start + 25]]})
    return len(keys)


async def forget(ddb: Any, settings: Settings, business_id: str, user_id: str) -> ForgetReport:
    t = settings.tables
    stream = f"{business_id}#{user_id}"
    report = ForgetReport()
    await ddb.put_item(TableName=t.events, Item=to_item({**tombstone_key(business_id, user_id), "forgottenAt": iso(utc_now())}))
    events = await query_all(ddb, TableName=t.events, KeyConditionExpression="streamId = :s",
                             ExpressionAttributeValues=to_item({":s": stream}), ProjectionExpression="streamId, seq")
    report.events = await _delete(ddb, t.events, events)
    idem = await scan_all(ddb, TableName=t.events, ProjectionExpression="streamId, seq",
                          FilterExpression="begins_with(streamId, :p) AND eventStreamId = :s",
                          ExpressionAttributeValues=to_item({":p": f"{IDEM_PREFIX}{business_id}#", ":s": stream}))
    report.idempotency_records = await _delete(ddb, t.events, idem)
    sessions = await sessions_of_user(ddb, t, business_id, user_id)
    for session in sessions:
        messages = await query_all(ddb, TableName=t.messages, IndexName=MESSAGES_BY_SESSION,
                                   KeyConditionExpression="sessionId = :s",
                                   ExpressionAttributeValues=to_item({":s": session["sessionId"]}))
        report.messages += await _delete(ddb, t.messages, [{"messageId": m["messageId"], "sessionId": m["sessionId"]} for m in messages])
    report.sessions = await _delete(ddb, t.sessions, [{"sessionId": s["sessionId"]} for s in sessions])
    report.memory = await _delete(ddb, t.rag_user, [{"businessId": business_id, "userId": user_id}])
    report.still_in_kafka = [
        f"{topic}: records keyed {stream!r} remain until the topic's retention (default 7 days) deletes them"
        for topic in (settings.topic_events, settings.topic_replies, settings.topic_dlq)
    ]
    return report
