"""The `credentials` commands' work: set, show (masked) and rotate a business's secrets."""

from __future__ import annotations

from agentstream.adapters.credentials import SPECS, RekeyReport, credential_store, mask
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.settings import Settings


async def set_values(settings: Settings, business: str, provider: str, values: dict[str, str]) -> list[str]:
    async with dynamodb_client(settings) as ddb:
        store = credential_store(ddb, settings)
        await store.set(business, provider, values)
    return list(values)


async def show_values(settings: Settings, business: str, provider: str) -> dict[str, str]:
    async with dynamodb_client(settings) as ddb:
        store = credential_store(ddb, settings)
        public = SPECS[provider].public if provider in SPECS else ()
        return {k: v if k in public else mask(v) for k, v in (await store.get(business, provider)).items()}


async def rotate_value(settings: Settings, business: str, provider: str) -> dict[str, str]:
    async with dynamodb_client(settings) as ddb:
        store = credential_store(ddb, settings)
        return await store.rotate(business, provider)


async def rekey_all(settings: Settings) -> RekeyReport:
    async with dynamodb_client(settings) as ddb:
        return await credential_store(ddb, settings).rekey()
