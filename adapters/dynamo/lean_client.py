"""The hot path's DynamoDB client: aiodynamo's signed requests over aiohttp, with botocore's shape.

A turn's calls (append, read the log, the projections' transaction, business data) cost the
client process about half of aiobotocore's CPU this way (the README's benchmark section): no
per-call model lookup, event hooks, parameter serialising or response parsing beyond
`json.loads`. The calls take and answer DynamoDB's own JSON, which is what
the stores already build with `to_item` and read with `from_item`, so a store works with either
client. Errors come back as botocore's `ClientError` with the same code and cancellation reasons,
so `error_code` and the append's conflict handling do not change. aiobotocore stays for Streams,
administration and everything off the hot path; `DYNAMODB_CLIENT=botocore` puts the hot path back
on it too. Binary (`B`) attributes are not supported here (no hot table has one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiodynamo.client import Client
from aiodynamo.credentials import Credentials, Key, StaticCredentials
from aiodynamo.errors import AIODynamoError
from aiodynamo.http.aiohttp import AIOHTTP
from botocore.exceptions import ClientError
from yarl import URL

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.metrics import DYNAMODB_CALLS
from agentstream.settings import Settings

OPERATIONS = {
    "get_item": "GetItem", "put_item": "PutItem", "update_item": "UpdateItem", "delete_item": "DeleteItem",
    "query": "Query", "scan": "Scan", "batch_get_item": "BatchGetItem", "batch_write_item": "BatchWriteItem",
    "transact_write_items": "TransactWriteItems", "transact_get_items": "TransactGetItems",
}


def as_client_error(exc: AIODynamoError, action: str) -> ClientError:
    """aiodynamo's error as botocore's: `response["Error"]["Code"]`, and `CancellationReasons`."""
    body = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = str(body.get("__type", type(exc).__name__)).split("#")[-1]
    response: dict[str, Any] = {"Error": {"Code": code, "Message": body.get("message") or body.get("Message") or str(exc)}}
    if "CancellationReasons" in body:
        response["CancellationReasons"] = body["CancellationReasons"]
    return ClientError(response, action)  # type: ignore[arg-type]


class LeanDynamo:
    """`put_item(**kwargs)` and the other data-plane calls of a botocore DynamoDB client, answering
    the same dicts; `get_paginator("query" | "scan").paginate(**kwargs)` too."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        DYNAMODB_CALLS.labels("dynamodb", action).inc()
        try:
            return await self._client.send_request(action=action, payload=payload)
        except AIODynamoError as exc:
            raise as_client_error(exc, action) from None

    def __getattr__(self, name: str) -> Any:
        if name not in OPERATIONS:
            raise AttributeError(f"LeanDynamo has no {name} (use the aiobotocore client for it)")
        action = OPERATIONS[name]

        async def operation(**payload: Any) -> dict[str, Any]:
            return await self.call(action, payload)

        return operation

    def get_paginator(self, name: str) -> "_Pages":
        return _Pages(self, OPERATIONS[name])


class _Pages:
    def __init__(self, ddb: LeanDynamo, action: str) -> None:
        self._ddb, self._action = ddb, action

    async def paginate(self, **payload: Any) -> AsyncIterator[dict[str, Any]]:
        while True:
            page = await self._ddb.call(self._action, payload)
            yield page
            if not page.get("LastEvaluatedKey"):
                return
            payload = {**payload, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _credentials(settings: Settings) -> Credentials:
    local = settings.aws_credentials
    if local:
        return StaticCredentials(Key(local["aws_access_key_id"], local["aws_secret_access_key"]))
    return Credentials.auto()


@asynccontextmanager
async def hot_dynamodb_client(settings: Settings) -> AsyncIterator[Any]:
    """The client for a turn's calls: LeanDynamo, or aiobotocore's when DYNAMODB_CLIENT=botocore."""
    if settings.dynamodb_client == "botocore":
        async with dynamodb_client(settings) as ddb:
            yield ddb
        return
    timeout = aiohttp.ClientTimeout(total=30, connect=5)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        endpoint = URL(settings.dynamodb_endpoint_url) if settings.dynamodb_endpoint_url else None
        yield LeanDynamo(Client(AIOHTTP(session), _credentials(settings), settings.aws_region, endpoint))
