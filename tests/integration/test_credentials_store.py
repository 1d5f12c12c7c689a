"""Credentials on the real local DynamoDB server: encrypted at rest, API keys hashed and naming
their business, widget keys rotated with the previous one kept."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from agentstream.adapters.dynamo.credentials import CredentialsError, CredentialStore
from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.settings import Settings


async def test_stored_secret_is_encrypted(settings: Settings) -> None:
    s = settings
    key = Fernet.generate_key().decode()
    async with dynamodb_client(s) as ddb:
        await ensure_tables(ddb, s.tables, only=[s.tables.credentials])
        store = CredentialStore(ddb, s.tables.credentials, key)
        await store.set("b1", "twilio", {"authToken": "tok-123456789"})
        await store.set("b1", "rest", {"apiKey": "b1.my-api-key"})
        raw = await ddb.scan(TableName=s.tables.credentials)
        assert "tok-123456789" not in str(raw) and "my-api-key" not in str(raw)
        assert (await store.get("b1", "twilio"))["authToken"] == "tok-123456789"
        assert await store.api_key_business("b1.my-api-key") == "b1"
        assert await store.api_key_business("b1.wrong") is None
        assert await store.api_key_business("b2.my-api-key") is None
        assert await store.api_key_business("my-api-key") is None, "a bare key names no business"
        with pytest.raises(CredentialsError):
            await CredentialStore(ddb, s.tables.credentials, Fernet.generate_key().decode()).get("b1", "twilio")


async def test_rotation_issues_keys_in_the_new_form(settings: Settings) -> None:
    s = settings
    async with dynamodb_client(s) as ddb:
        await ensure_tables(ddb, s.tables, only=[s.tables.credentials])
        store = CredentialStore(ddb, s.tables.credentials, Fernet.generate_key().decode())
        await store.set("salon.ro", "rest", {"apiKey": "old-bare-secret"})  # a key of the earlier form
        assert await store.api_key_business("salon.ro.old-bare-secret") == "salon.ro", "the old secret, prefixed"
        key = (await store.rotate("salon.ro", "rest"))["apiKey"]
        assert key.startswith("salon.ro.") and "." not in key.removeprefix("salon.ro.")
        assert await store.api_key_business(key) == "salon.ro"
        assert await store.api_key_business("salon.ro.old-bare-secret") is None, "rotation retires the old key"
        with pytest.raises(CredentialsError, match="without dots"):
            await store.set("salon.ro", "rest", {"apiKey": "other.secret"})

        first = (await store.rotate("b1", "widget"))["signingKey"]
        assert await store.widget_keys("b1") == [first]
        second = (await store.rotate("b1", "widget"))["signingKey"]
        assert await store.widget_keys("b1") == [first, second], "the previous key still verifies"
        await store.set("b1", "widget", {"signingKey": "third-key-set-by-hand"})
        assert await store.widget_keys("b1") == [second, "third-key-set-by-hand"]
        assert await store.widget_keys("nobody") == []
