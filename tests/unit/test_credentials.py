"""Credentials are encrypted at rest and widget tokens are scoped and expire."""

from __future__ import annotations

import pytest

from agentstream.adapters.credentials import (
    CredentialsError, hash_api_key, issue_widget_token, mask, validate, verify_widget_token,
)


def test_widget_token_is_bound_to_business_user_and_time() -> None:
    token, expires = issue_widget_token("k", "b1", "u1", ttl_s=60, now=1000)
    assert expires == 1060
    assert verify_widget_token("k", token, "b1", "u1", now=1059)
    assert not verify_widget_token("k", token, "b1", "u1", now=1061)
    assert not verify_widget_token("k", token, "b2", "u1", now=1000)
    assert not verify_widget_token("k", token, "b1", "u2", now=1000)
    assert not verify_widget_token("other", token, "b1", "u1", now=1000)
    assert not verify_widget_token("k", token[:-2] + "xx", "b1", "u1", now=1000)
    assert not verify_widget_token("k", "garbage", "b1", "u1", now=1000)


def test_validation_and_masking() -> None:
    with pytest.raises(CredentialsError, match="unknown provider"):
        validate("fax", {})
    with pytest.raises(CredentialsError, match="no key 'pin'"):
        validate("twilio", {"pin": "1"})
    assert "supersecret" not in mask("supersecretvalue")
    assert hash_api_key("a") != "a"


