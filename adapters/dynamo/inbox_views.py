"""What the business's people have read in the inbox: view state kept beside the log, not in it.

One small item per (business, session, reader) in `ai-agent-inbox-views` (PK businessId, SK
`<sessionId>#<reader>`): the highest message seq the reader has been shown and when. A
conversation's unread count is the customer's messages after the highest seq any person of the
business has seen. Nothing here is an event: replaying the log neither needs nor changes it;
`forget` deletes the items of the customer's sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentstream.adapters.dynamo.client import error_code, query_all, to_item
from agentstream.events import iso, utc_now


class InboxViews:
    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    async def opened(self, business_id: str, session_id: str, reader: str, seen_seq: int) -> None:
        """`reader` has been shown the conversation up to message seq `seen_seq` (never lowered)."""
        item = {"businessId": business_id, "viewKey": f"{session_id}#{reader}", "sessionId": session_id,
                "reader": reader, "seenSeq": seen_seq, "openedAt": iso(utc_now())}
        try:
            await self._ddb.put_item(TableName=self._table, Item=to_item(item),
                                     ConditionExpression="attribute_not_exists(seenSeq) OR seenSeq <= :s",
                                     ExpressionAttributeValues=to_item({":s": seen_seq}))
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    async def seen(self, business_id: str) -> dict[str, int]:
        """Per sessionId, the highest message seq any reader of the business has been shown."""
        items = await query_all(self._ddb, TableName=self._table, KeyConditionExpression="businessId = :b",
                                ExpressionAttributeValues=to_item({":b": business_id}),
                                ProjectionExpression="sessionId, seenSeq")
        seen: dict[str, int] = {}
        for item in items:
            if "sessionId" not in item:  # a signed-out inbox session's record (adapters/http/inbox_session.py)
                continue
            seen[item["sessionId"]] = max(seen.get(item["sessionId"], 0), int(item["seenSeq"]))
        return seen

    async def of_sessions(self, business_id: str, session_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The keys (businessId, viewKey) of every reader's item of these sessions, read
        consistently: one Query per session (`forget` deletes them)."""
        keys: list[dict[str, Any]] = []
        for session_id in sorted(set(session_ids)):
            keys += await query_all(self._ddb, TableName=self._table, ConsistentRead=True,
                                    KeyConditionExpression="businessId = :b AND begins_with(viewKey, :p)",
                                    ExpressionAttributeValues=to_item({":b": business_id, ":p": f"{session_id}#"}),
                                    ProjectionExpression="businessId, viewKey")
        return keys


def unread(messages: list[dict[str, Any]], seen_seq: int) -> int:
    """The customer's messages after `seen_seq`."""
    return sum(1 for m in messages if m.get("type") == "user" and int(m.get("seq", 0)) > seen_seq)
