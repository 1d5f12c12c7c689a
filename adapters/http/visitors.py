"""Widget visitors' records (`ai-agent-widget-visitors`: PK businessId, SK userId), one item per
visitor, so that tokens can be rotated, capped and revoked although they are signed, stateless
strings.

The record holds the visitor's creation time, the id of its current token (`tokenId`, with
that token's expiry) and of the one it replaced (`previousTokenId`, until `previousUntil`). A
socket needs the current token. A refresh with the current token rotates it (the old one stops
working); a refresh with the just-replaced one within GRACE_S gets the same new token (a second
tab keeps the visitor). Nothing is issued past `createdAt` + the lifetime
(`WIDGET_VISITOR_LIFETIME_DAYS`), and a revoked visitor gets nothing. Tokens issued before
records existed (no token id) keep their stateless rules until they expire, for a transition.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from agentstream.adapters.dynamo.client import error_code, from_item, to_item
from agentstream.adapters.signals import REVOKED, Signals

GRACE_S = 60


@dataclass(frozen=True)
class Visitor:
    created_at: int
    token_id: str
    token_exp: int
    previous_token_id: str = ""
    previous_until: int = 0
    revoked: bool = False


def new_token_id() -> str:
    return uuid.uuid4().hex


class VisitorRecords:
    def __init__(self, ddb: Any, table: str, lifetime_s: int) -> None:
        self._ddb = ddb
        self._table = table
        self.lifetime_s = lifetime_s

    def _key(self, business_id: str, user_id: str) -> dict[str, Any]:
        return to_item({"businessId": business_id, "userId": user_id})

    async def get(self, business_id: str, user_id: str) -> Visitor | None:
        item = (await self._ddb.get_item(TableName=self._table, Key=self._key(business_id, user_id),
                                         ConsistentRead=True)).get("Item")
        if not item:
            return None
        row = from_item(item)
        return Visitor(int(row["createdAt"]), row["tokenId"], int(row["tokenExp"]), row.get("previousTokenId", ""),
                       int(row.get("previousUntil", 0)), bool(row.get("revoked", False)))

    async def create(self, business_id: str, user_id: str, token_id: str, token_exp: int, now: int) -> None:
        item = {"businessId": business_id, "userId": user_id, "createdAt": now, "tokenId": token_id,
                "tokenExp": token_exp, "expiresAt": now + self.lifetime_s + 86_400}
        await self._ddb.put_item(TableName=self._table, Item=to_item(item))

    async def rotate(self, business_id: str, user_id: str, old: str, new: str, new_exp: int, now: int) -> bool:
        """Make `new` current if `old` still is (False: another refresh got there first)."""
        try:
            await self._ddb.update_item(
                TableName=self._table, Key=self._key(business_id, user_id),
                UpdateExpression="SET tokenId = :n, tokenExp = :e, previousTokenId = :o, previousUntil = :u",
                ConditionExpression="tokenId = :o",
                ExpressionAttributeValues=to_item({":n": new, ":e": new_exp, ":o": old, ":u": now + GRACE_S}))
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    async def revoke(self, business_id: str, user_id: str) -> bool:
        """End a visitor: its tokens stop working at once. False for an unknown visitor."""
        try:
            await self._ddb.update_item(TableName=self._table, Key=self._key(business_id, user_id),
                                        UpdateExpression="SET revoked = :t", ConditionExpression="attribute_exists(userId)",
                                        ExpressionAttributeValues=to_item({":t": True}))
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def ends_at(self, visitor: Visitor) -> int:
        return visitor.created_at + self.lifetime_s


async def revoke_visitor(records: VisitorRecords | None, hub: Any, business_id: str, user_id: str,
                         signals: Signals | None = None) -> bool:
    """Revoke a visitor and close its sockets (4403): this gateway's at once, every other
    gateway's through a `revoked` signal; False for an unknown one. (Were the signal lost, another
    gateway's socket ends at its next check: a refresh or reconnect is refused.)"""
    if records is None or not await records.revoke(business_id, user_id):
        return False
    stream = f"{business_id}#{user_id}"
    await hub.close_all(stream, *REVOKED)
    if signals is not None:
        await signals.revoked(stream)
    return True


def may_connect(records: VisitorRecords, visitor: Visitor | None, token_id: str | None, now: float | None = None) -> bool:
    """Whether a socket may open with a (signature-checked, unexpired) token of this id."""
    now = now or time.time()
    if token_id is None:  # issued before records: its stateless rules, unless the visitor is revoked or over age
        return visitor is None or not (visitor.revoked or now >= records.ends_at(visitor))
    return visitor is not None and not visitor.revoked and now < records.ends_at(visitor) and token_id == visitor.token_id
