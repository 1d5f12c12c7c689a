"""Rate limits with the `limits` library: a refused request gets 429 with Retry-After (a socket
closes with 4429), is counted in `agentstream_rate_limited_total{limit}` and changes nothing.

Per-socket frame rates live with the socket (`SocketWindow`, a socket is one process's). The limits
that must hold across gateways (visitors minted per address and per business, inbox sign-ins
per address and per business) count in DynamoDB: `DynamoWindows`, a `limits` storage with one
counter item per limit, caller and fixed window (`ADD hits`, one UpdateItem a request) in
the table `ai-agent-rate-limits`, removed by its TTL after the window. Callers (an address, a
business id) are hashed before they become a key: keys stay short whatever the caller sends,
and the table holds no address. If that table cannot be reached the request is let through
(logged and counted as `outcome="unavailable"`): a limit must not take the gateway down.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.limits import TIME_TYPES
from prometheus_client import Counter

from agentstream.adapters.http.errors import HttpError

log = structlog.get_logger(__name__)
LIMITED = Counter("agentstream_rate_limited_total", "Requests refused (or let through unchecked) by a rate limit",
                  ["limit", "outcome"])


class RateLimited(HttpError):
    """429 with Retry-After: the caller went over `limit`."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        super().__init__(429, f"too many requests ({limit}): try again in {retry_after_s} s")
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


def _window_s(key: str) -> int:
    """The window of a `limits` key (`…/amount/multiples/granularity`), in seconds."""
    _, multiples, granularity = key.rsplit("/", 3)[-3:]
    return int(multiples) * TIME_TYPES[granularity].seconds


class DynamoWindows(Storage):
    """Fixed-window counters shared by every gateway: item `limitKey` = `<key>#<window number>`,
    `hits` (a number), `expiresAt` (epoch s, the table's TTL attribute)."""

    STORAGE_SCHEME = ["agentstream+dynamodb"]

    def __init__(self, ddb: Any, table: str) -> None:
        super().__init__()
        self._ddb = ddb
        self._table = table

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return Exception

    @staticmethod
    def _item_key(key: str, window_s: int, now: float) -> str:
        return f"{key}#{int(now // window_s)}"

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        window_s, now = max(1, int(expiry)), time.time()
        ends = (int(now // window_s) + 1) * window_s
        answer = await self._ddb.update_item(
            TableName=self._table, Key={"limitKey": {"S": self._item_key(key, window_s, now)}},
            UpdateExpression="ADD hits :n SET expiresAt = if_not_exists(expiresAt, :e)",
            ExpressionAttributeValues={":n": {"N": str(amount)}, ":e": {"N": str(ends + 60)}}, ReturnValues="UPDATED_NEW")
        return int(answer["Attributes"]["hits"]["N"])

    async def get(self, key: str) -> int:
        item = (await self._ddb.get_item(TableName=self._table, ConsistentRead=True,
                                         Key={"limitKey": {"S": self._item_key(key, _window_s(key), time.time())}})).get("Item")
        return int(item["hits"]["N"]) if item else 0

    async def get_expiry(self, key: str) -> float:
        window_s = _window_s(key)
        return (int(time.time() // window_s) + 1) * window_s

    async def check(self) -> bool:
        try:
            await self._ddb.describe_table(TableName=self._table)
            return True
        except Exception:  # noqa: BLE001 - unreachable or missing: not healthy
            return False

    async def reset(self) -> int | None:
        return None  # the TTL clears old windows; nothing to reset at once

    async def clear(self, key: str) -> None:
        await self._ddb.delete_item(TableName=self._table,
                                    Key={"limitKey": {"S": self._item_key(key, _window_s(key), time.time())}})


def caller(value: str) -> str:
    """A caller's id as a limit key part: short and opaque whatever its length."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Limit:
    name: str
    item: RateLimitItem


class Limiter:
    """`hit(limit, *who)` counts one request of `who`, raising RateLimited past the limit."""

    def __init__(self, storage: Storage) -> None:
        self._strategy = FixedWindowRateLimiter(storage)

    async def hit(self, limit: Limit, *who: str) -> None:
        ids = [caller(w) for w in who]
        try:
            allowed = await self._strategy.hit(limit.item, limit.name, *ids)
            if not allowed:
                reset, _ = await self._strategy.get_window_stats(limit.item, limit.name, *ids)
        except Exception as exc:  # noqa: BLE001 - the shared counters are out of reach: let it through
            LIMITED.labels(limit=limit.name, outcome="unavailable").inc()
            log.warning("rate_limit.unavailable", limit=limit.name, error=f"{type(exc).__name__}: {exc}"[:200])
            return
        if not allowed:
            LIMITED.labels(limit=limit.name, outcome="refused").inc()
            raise RateLimited(limit.name, max(1, math.ceil(reset - time.time())))


class SocketWindow:
    """One socket's frames in a moving window of `limit` (`amount` per `expiry`), as `limits`'
    moving-window strategy counts them: a frame is refused while the last `amount` taken all fall
    within the window; a refused frame is not counted. The state is the socket's own and goes with
    it: `limits`' in-memory storage would sweep every socket's key through a thread on each hit."""

    def __init__(self, limit: Limit) -> None:
        self._name = limit.name
        self._window_s = limit.item.get_expiry()
        self._taken: deque[float] = deque(maxlen=limit.item.amount)
        self._refused = LIMITED.labels(limit=limit.name, outcome="refused")

    def hit(self, now: float | None = None) -> None:
        """Count one frame, or raise RateLimited (counted) if the socket is over its limit."""
        now = time.monotonic() if now is None else now
        full = len(self._taken) == self._taken.maxlen
        if full and (not self._taken or self._taken[0] >= now - self._window_s):
            self._refused.inc()
            wait = self._taken[0] + self._window_s - now if self._taken else self._window_s
            raise RateLimited(self._name, max(1, math.ceil(wait)))
        self._taken.append(now)


class GatewayLimits:
    """Every limit of a gateway, from the settings: shared ones in DynamoDB, per-socket ones with
    each socket (`socket_window()`)."""

    def __init__(self, settings: Any, ddb: Any) -> None:
        self.shared = Limiter(DynamoWindows(ddb, settings.tables.rate_limits))
        self.socket_frames = Limit("socket_frames", parse(settings.limit_socket_frames))
        self.visitors_per_address = Limit("visitors_per_address", parse(settings.limit_visitors_per_address))
        self.visitors_per_business = Limit("visitors_per_business", parse(settings.limit_visitors_per_business))
        self.sign_in_per_address = Limit("sign_in_per_address", parse(settings.limit_sign_in_per_address))
        self.sign_in_per_business = Limit("sign_in_per_business", parse(settings.limit_sign_in_per_business))

    def socket_window(self) -> SocketWindow:
        """A new socket's frame window."""
        return SocketWindow(self.socket_frames)
