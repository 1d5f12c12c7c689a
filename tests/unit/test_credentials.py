"""Credentials are encrypted at rest, API keys name their business, and widget tokens are
scoped, expire, survive one key rotation and can be refreshed for the same visitor."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from agentstream.adapters.dynamo.credentials import (
    REFRESH_GRACE_S, CredentialsError, api_key_secret, hash_api_key, issue_widget_token, mask, refreshable_user,
    split_api_key, validate, verify_widget_token,
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
    assert not verify_widget_token("k", "", "b1", "u1", now=1000)


def test_a_rotated_key_still_verifies_until_the_next_rotation() -> None:
    token, _ = issue_widget_token(["k1"], "b1", "u1", ttl_s=60, now=1000)
    assert verify_widget_token(["k1", "k2"], token, "b1", "u1", now=1001), "previous key still verifies"
    assert not verify_widget_token(["k2", "k3"], token, "b1", "u1", now=1001), "two rotations later it does not"
    fresh, _ = issue_widget_token(["k1", "k2"], "b1", "u1", ttl_s=60, now=1000)
    assert verify_widget_token("k2", fresh, "b1", "u1", now=1001), "the last key signs"
    assert not verify_widget_token("k1", fresh, "b1", "u1", now=1001)


def test_refresh_accepts_an_expired_token_of_this_business_within_the_grace() -> None:
    token, expires = issue_widget_token("k", "b1", "u1", ttl_s=60, now=1000)
    assert refreshable_user("k", token, "b1", now=expires + 10) == "u1", "expired, still refreshable"
    assert refreshable_user(["k", "k2"], token, "b1", now=expires + 10) == "u1", "after a rotation too"
    assert refreshable_user("k", token, "b1", now=expires + REFRESH_GRACE_S + 1) is None, "beyond the grace"
    assert refreshable_user("k", token, "b2", now=1001) is None, "another business's token"
    assert refreshable_user("other", token, "b1", now=1001) is None
    assert refreshable_user("k", token[:-2] + "xx", "b1", now=1001) is None, "tampered"
    assert refreshable_user("k", "garbage", "b1", now=1001) is None


def test_a_token_of_the_earlier_format_can_only_be_refreshed() -> None:
    body = b"b1|u1|1060"
    sig = hmac.new(b"k", body, hashlib.sha256).digest()
    legacy = base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")
    assert not verify_widget_token("k", legacy, "b1", "u1", now=1000)
    assert refreshable_user("k", legacy, "b1", now=2000) == "u1"
    assert refreshable_user("k2", legacy, "b1", now=2000) is None


def test_api_keys_name_their_business() -> None:
    assert split_api_key("demo-salon.s3cr3t_-x") == ("demo-salon", "s3cr3t_-x")
    assert split_api_key("salon.ro.cluj.s3cr3t") == ("salon.ro.cluj", "s3cr3t"), "a businessId may hold dots"
    assert split_api_key("bare-old-key") is None and split_api_key(".x") is None and split_api_key("b.") is None
    assert api_key_secret("b.1", "b.1.abc") == "abc" and api_key_secret("b.1", "abc") == "abc"
    with pytest.raises(CredentialsError, match="without dots"):
        api_key_secret("b1", "other.abc")


def test_validation_and_masking() -> None:
    with pytest.raises(CredentialsError, match="unknown provider"):
        validate("fax", {})
    with pytest.raises(CredentialsError, match="no key 'pin'"):
        validate("twilio", {"pin": "1"})
    assert "supersecret" not in mask("supersecretvalue")
    assert hash_api_key("a") != "a"


