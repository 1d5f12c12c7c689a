"""The `credentials` commands' work: set, show (masked) and rotate a business's secrets."""

from __future__ import annotations

from agentstream.adapters.dynamo.credentials import SPECS, CredentialStore, RekeyReport, mask
from agentstream.settings import Settings
from agentstream.wiring import run_with_credentials


async def set_values(settings: Settings, business: str, provider: str, values: dict[str, str]) -> list[str]:
    async def work(store: CredentialStore) -> None:
        await store.set(business, provider, values)

    await run_with_credentials(settings, work)
    return list(values)


async def show_values(settings: Settings, business: str, provider: str) -> dict[str, str]:
    async def work(store: CredentialStore) -> dict[str, str]:
        public = SPECS[provider].public if provider in SPECS else ()
        return {k: v if k in public else mask(v) for k, v in (await store.get(business, provider)).items()}

    return await run_with_credentials(settings, work)


async def rotate_value(settings: Settings, business: str, provider: str) -> dict[str, str]:
    async def work(store: CredentialStore) -> dict[str, str]:
        return await store.rotate(business, provider)

    return await run_with_credentials(settings, work)


async def rekey_all(settings: Settings) -> RekeyReport:
    async def work(store: CredentialStore) -> RekeyReport:
        return await store.rekey()

    return await run_with_credentials(settings, work)
