"""Async DynamoDB and DynamoDB Streams clients (aiobotocore) and item (de)serialisation."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ConnectionError as BotoConnectionError, HTTPClientError

from agentstream.metrics import DYNAMODB_CALLS
from agentstream.retry import RetryPolicy
from agentstream.settings import Settings


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        "config": AioConfig(
            max_pool_connections=64,
            retries={"mode": "standard", "max_attempts": 5},
            account_id_endpoint_mode="disabled",
            connect_timeout=5,
            read_timeout=30,
            # botocore's client-side check of every request costs ~20 % of a replay's CPU;
            # DynamoDB validates each request anyway and answers a ValidationException.
            parameter_validation=False,
        ),
        **settings.aws_credentials,
    }
    if settings.dynamodb_endpoint_url:
        kwargs["endpoint_url"] = settings.dynamodb_endpoint_url
    return kwargs


def _count_call(model: Any, **_: Any) -> None:
    """Counts each API call (agentstream_dynamodb_calls_total, by service and operation)."""
    DYNAMODB_CALLS.labels(model.service_model.service_name, model.name).inc()


@asynccontextmanager
async def dynamodb_client(settings: Settings) -> AsyncIterator[Any]:
    async with get_session().create_client("dynamodb", **_client_kwargs(settings)) as client:
        client.meta.events.register("before-call", _count_call)
        yield client


@asynccontextmanager
async def streams_client(settings: Settings) -> AsyncIterator[Any]:
    async with get_session().create_client("dynamodbstreams", **_client_kwargs(settings)) as client:
        client.meta.events.register("before-call", _count_call)
        yield client


@asynccontextmanager
async def clients(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """Both clients at once: (dynamodb, dynamodbstreams)."""
    async with AsyncExitStack() as stack:
        ddb = await stack.enter_async_context(dynamodb_client(settings))
        streams = await stack.enter_async_context(streams_client(settings))
        yield ddb, streams


def _typed(value: Any) -> dict[str, Any]:
    """One plain value as a DynamoDB attribute value (what boto3's TypeSerializer gives, faster)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB has no number {value}")
        return {"N": str(Decimal(repr(value)))}
    if isinstance(value, Decimal):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: _typed(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_typed(v) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A plain dict to DynamoDB's typed attribute map."""
    return {k: _typed(v) for k, v in data.items()}


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        number = float(text)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _plain(value: dict[str, Any]) -> Any:
    (kind, inner), = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return _number(inner)
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "BOOL":
        return inner
    if kind == "NULL":
        return None
    if kind == "NS":
        return [_number(v) for v in inner]
    return list(inner) if kind in ("SS", "BS") else inner


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed attribute map to a plain dict (integral numbers as int, no Decimal)."""
    return {k: _plain(v) for k, v in item.items()}


def error_code(exc: BaseException) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def unreachable(exc: BaseException) -> bool:
    """Whether the server could not be reached or answered nothing (refused, reset, timed out):
    a restart or an outage to wait out, not an answer."""
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, asyncio.TimeoutError))


class LeftUnprocessed(RuntimeError):
    """DynamoDB still left part of a batch unprocessed after every try (throttled for long)."""


UNPROCESSED_TRIES = RetryPolicy(attempts=10, wait_initial=0.05, wait_max=2.0, wait_jitter=0.05, timeout=30.0)


async def until_processed(call: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], request: dict[str, Any],
                          left: str, policy: RetryPolicy = UNPROCESSED_TRIES) -> None:
    """`call(request)`, then again with what its answer's `left` (UnprocessedItems or
    UnprocessedKeys) holds, waiting longer each time (exponential backoff with jitter, as
    DynamoDB asks), until nothing is left; LeftUnprocessed after the policy's tries."""
    pending = request
    try:
        async for attempt in policy.attempts_of(LeftUnprocessed):
            with attempt:
                pending = (await call(pending)).get(left) or {}
                if pending:
                    raise LeftUnprocessed(f"{sum(map(len, pending.values()))} requests left unprocessed")
    except LeftUnprocessed as exc:
        raise LeftUnprocessed(f"DynamoDB batch: {exc} after {policy.attempts} tries") from None


async def batch_write(ddb: Any, requests: dict[str, list[dict[str, Any]]]) -> None:
    """One BatchWriteItem call (25 requests at most), retrying what DynamoDB left unprocessed."""
    await until_processed(lambda pending: ddb.batch_write_item(RequestItems=pending), requests, "UnprocessedItems")


async def existing_keys(ddb: Any, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those of `keys` (plain key maps of one table) whose item exists: consistent BatchGetItem
    of the key attributes only, 100 keys a call (duplicates read once), retrying what was left
    unprocessed."""
    unique = list({tuple(sorted(k.items())): k for k in keys}.values())
    if not unique:
        return []
    names = {f"#k{i}": name for i, name in enumerate(sorted(unique[0]))}
    found: list[dict[str, Any]] = []
    for start in range(0, len(unique), 100):
        request: dict[str, Any] = {table: {"Keys": [to_item(k) for k in unique[start:start + 100]],
                                           "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names,
                                           "ConsistentRead": True}}
        await until_processed(lambda pending: read_into(ddb, pending, table, found), request, "UnprocessedKeys")
    return found


async def read_into(ddb: Any, request: dict[str, Any], table: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    """One BatchGetItem; the items of `table` it found are added to `found`; its answer."""
    answer = await ddb.batch_get_item(RequestItems=request)
    found.extend(from_item(i) for i in answer.get("Responses", {}).get(table, []))
    return answer


async def put_items(ddb: Any, table: str, items: list[dict[str, Any]], concurrency: int = 8) -> None:
    """Unconditional puts, 25 to a BatchWriteItem call, `concurrency` calls at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def chunk(part: list[dict[str, Any]]) -> None:
        async with slots:
            await batch_write(ddb, {table: [{"PutRequest": {"Item": to_item(i)}} for i in part]})

    await asyncio.gather(*(chunk(items[i:i + 25]) for i in range(0, len(items), 25)))


async def put_log_items(ddb: Any, table: str, items: list[dict[str, Any]], concurrency: int = 8) -> None:
    """Bulk-write already-numbered log items as appends would have left them: every stream's
    seq n is written only after its seq n-1 (one wave of `put_items` per seq), so a reader of
    the table's stream never sees a stream's seqs out of order."""
    waves: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        waves.setdefault(int(item["seq"]), []).append(item)
    for seq in sorted(waves):
        await put_items(ddb, table, waves[seq], concurrency)


async def query_all(ddb: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a Query, following pagination."""
    items: list[dict[str, Any]] = []
    async for page in ddb.get_paginator("query").paginate(**kwargs):
        items.extend(from_item(i) for i in page.get("Items", []))
    return items


async def scan_all(ddb: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a Scan, following pagination (small tables only)."""
    items: list[dict[str, Any]] = []
    async for page in ddb.get_paginator("scan").paginate(**kwargs):
        items.extend(from_item(i) for i in page.get("Items", []))
    return items


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[Any]:
    """The media bucket's S3 client: MEDIA_S3_ENDPOINT_URL, else the local server's address
    (ministack serves S3 on the DynamoDB port), else AWS; path-style addressing for local servers."""
    endpoint = settings.media.s3_endpoint_url or settings.dynamodb_endpoint_url
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, **settings.aws_credentials,
                              "config": AioConfig(s3={"addressing_style": "path"} if endpoint else {},
                                                  retries={"mode": "standard", "max_attempts": 5},
                                                  connect_timeout=5, read_timeout=60)}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        kwargs.setdefault("aws_access_key_id", "local")
        kwargs.setdefault("aws_secret_access_key", "local")
    async with get_session().create_client("s3", **kwargs) as client:
        yield client
