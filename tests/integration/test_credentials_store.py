"""Credentials on the real local DynamoDB server: encrypted at rest, API keys hashed."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from agentstream.adapters.credentials import CredentialsError, CredentialStore
from agentstream.adapters.dynamo import dynamodb_client
from agentstream.adapters.tables import ensure_tables
from agentstream.settings import Settings


async def test_stored_secret_is_encrypted(settings: Settings) -> None:
    s = settings
    key = Fernet.generate_key().decode()
    async with dynamodb_client(s) as ddb:
        await ensure_tables(ddb, s.tables, only=[s.tables.credentials])
        store = CredentialStore(ddb, s.tables.credentials, key)
        await store.set("b1", "twilio", {"authToken": "tok-123456789"})
        await store.set("b1", "rest", {"apiKey": "my-api-key"})
        raw = await ddb.scan(TableName=s.tables.credentials)
        assert "tok-123456789" not in str(raw) and "my-api-key" not in str(raw)
        assert (await store.get("b1", "twilio"))["authToken"] == "tok-123456789"
        assert await store.check_api_key("b1", "my-api-key")
        assert not await store.check_api_key("b1", "wrong")
        assert not await store.check_api_key("b2", "my-api-key")
        with pytest.raises(CredentialsError):
            await CredentialStore(ddb, s.tables.credentials, Fernet.generate_key().decode()).get("b1", "twilio")
