"""Several secret keys at once: the newest seals, every key opens; a ciphertext is bound to its
business and provider; rows of the earlier Fernet format still open until `rekey` seals every
row (channel state too) under the current key, while readers keep working."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo.credentials import CredentialsError, CredentialStore
from agentstream.adapters.dynamo.client import to_item
from agentstream.keys import KeyRing
from agentstream.settings import Settings


def new_key() -> str:
    return Fernet.generate_key().decode()


async def stored(ddb: Any, settings: Settings, business: str, provider: str) -> str:
    item = (await ddb.get_item(TableName=settings.tables.credentials,
                               Key=to_item({"businessId": business, "provider": provider})))["Item"]
    return item["secret"]["S"]


async def test_the_newest_key_seals_and_every_key_opens(moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    old, new = new_key(), new_key()
    table = moto_settings.tables.credentials
    await CredentialStore(moto_ddb, table, KeyRing((old,))).set(biz, "twilio", {"authToken": "t-1"})
    both = CredentialStore(moto_ddb, table, KeyRing((new, old)))
    assert await both.get(biz, "twilio") == {"authToken": "t-1"}
    await both.set(biz, "meta", {"appSecret": "s-1"})
    assert await CredentialStore(moto_ddb, table, KeyRing((new,))).get(biz, "meta") == {"appSecret": "s-1"}
    with pytest.raises(CredentialsError):
        await CredentialStore(moto_ddb, table, KeyRing((old,))).get(biz, "meta")


async def test_a_ciphertext_moved_to_another_business_or_provider_does_not_open(moto_ddb: Any, moto_settings: Settings,
                                                                                biz: str) -> None:
    key, table = new_key(), moto_settings.tables.credentials
    store = CredentialStore(moto_ddb, table, key)
    await store.set(biz, "meta", {"appSecret": "s-1"})
    sealed = await stored(moto_ddb, moto_settings, biz, "meta")
    assert sealed.startswith("v2:") and "s-1" not in sealed
    for business, provider in ((f"{biz}-other", "meta"), (biz, "twilio")):
        await moto_ddb.put_item(TableName=table, Item=to_item({"businessId": business, "provider": provider, "secret": sealed}))
        with pytest.raises(CredentialsError, match="cannot be decrypted"):
            await CredentialStore(moto_ddb, table, key).get(business, provider)


async def test_rekey_moves_every_row_to_the_current_key_and_old_fernet_rows_open_until_then(
        moto_ddb: Any, moto_settings: Settings, biz: str) -> None:
    old, new, table = new_key(), new_key(), moto_settings.tables.credentials
    legacy = Fernet(old.encode()).encrypt(json.dumps({"accessToken": "g-1", "refreshToken": "r-1"}).encode()).decode()
    await moto_ddb.put_item(TableName=table, Item=to_item({"businessId": biz, "provider": "gmail", "secret": legacy}))
    await CredentialStore(moto_ddb, table, old).set_state(biz, "gmail-state", {"historyId": "42"})
    ring = CredentialStore(moto_ddb, table, KeyRing((new, old)))
    assert (await ring.get(biz, "gmail"))["accessToken"] == "g-1", "the earlier format opens"

    report = await ring.rekey()  # the session's table holds other tests' rows, under keys of their own
    assert not [row for row in report.unreadable if row.startswith(f"{biz}/")] and report.rekeyed == 2
    alone = CredentialStore(moto_ddb, table, new)  # the old key dropped after the rekey
    assert (await alone.get(biz, "gmail"))["refreshToken"] == "r-1"
    assert await alone.get(biz, "gmail-state") == {"historyId": "42"}
    assert (await ring.rekey()).rekeyed == 0, "a second rekey has nothing to do"
