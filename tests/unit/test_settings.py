"""Settings from the environment with the seed's names; a bad one fails with one line."""

from __future__ import annotations

import pytest

from agentstream.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DYNAMODB_MESSAGES_TABLE", "DYNAMODB_MESSIONS_TABLE", "KAFKA_BOOTSTRAP_SERVERS", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.tables.messages == "ai-agent-messages" and s.tables.events == "ai-agent-events"
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092" and s.aws_region == "us-east-1"


def test_seed_misspelt_messions_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNAMODB_MESSAGES_TABLE", raising=False)
    monkeypatch.setenv("DYNAMODB_MESSIONS_TABLE", "legacy-messages")
    assert Settings().tables.messages == "legacy-messages"


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PARTITIONS", "zero")
    with pytest.raises(SettingsError, match="KAFKA_PARTITIONS"):
        load_settings()


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    assert "sk-very-secret" not in repr(Settings())
