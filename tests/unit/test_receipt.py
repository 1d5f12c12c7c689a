"""Erasure receipts without services: pseudonyms, the signature and its check, Kafka's bound."""

from __future__ import annotations

import hashlib
import json

from agentstream import receipt as receipts
from agentstream.streams.erasure import kafka_holdings

SECRET = "a-secret-key"


def sample(secret: str = SECRET, left: int = 0) -> dict:
    return receipts.build(
        receipts.ReceiptKeys(secret), business_id="demo-salon", user_id="+40712345678",
        forgotten_at="2026-11-24T08:00:00.000Z", issued_at="2026-11-24T08:00:01.000Z",
        tombstone={"streamId": "forgotten#demo-salon#+40712345678", "seq": 0}, tombstone_present=True,
        tables={"events": "ai-agent-events", "idempotency_records": "ai-agent-events", "sessions": "ai-agent-sessions"},
        deleted={"events": [{"streamId": "demo-salon#+40712345678", "seq": 1}, {"streamId": "demo-salon#+40712345678", "seq": 2}],
                 "sessions": [{"sessionId": "s-1"}]},
        left={"events": 0, "idempotency_records": 0, "sessions": left},
        kafka=[{"topic": "agent.events.v1", "exists": True, "until": "2026-12-08T08:00:00.000Z"}])


def test_a_receipt_checks_with_its_key_and_names_no_customer() -> None:
    text = receipts.dumps(sample())
    verdict = receipts.check(text, SECRET)
    assert verdict.valid and verdict.line.startswith("receipt valid: demo-salon customer ")
    assert "deleted 3 (events 2, sessions 1); left 0" in verdict.line
    for plain in ("+40712345678", "40712345678", hashlib.sha256(b"+40712345678").hexdigest()):
        assert plain not in text
    assert receipts.check(json.dumps(json.loads(text)), SECRET).valid, "the layout of the file does not matter"


def test_a_changed_receipt_or_another_key_is_invalid() -> None:
    changed = sample()
    changed["deleted"]["events"]["count"] = 1
    changed["deleted"]["events"]["keys"].pop()
    assert receipts.check(receipts.dumps(changed), SECRET).line == \
        "receipt INVALID: the signature does not match: the receipt was changed after it was signed"
    other = receipts.check(receipts.dumps(sample()), "another-key")
    assert not other.valid and other.line.startswith("receipt INVALID: signed with another secret key")
    assert not receipts.check("{", SECRET).valid
    assert receipts.check('{"receipt": "x"}', SECRET).line == "receipt INVALID: not an agentstream erasure receipt"
    unsigned = sample()
    del unsigned["signature"]
    assert receipts.check(receipts.dumps(unsigned), SECRET).line == "receipt INVALID: no HMAC-SHA256 signature"


def test_a_signed_receipt_of_an_incomplete_erasure_does_not_prove_it() -> None:
    verdict = receipts.check(receipts.dumps(sample(left=2)), SECRET)
    assert not verdict.valid and verdict.line.endswith("items left after it: sessions 2")


def test_pseudonyms_are_stable_per_key_and_place() -> None:
    a, b = receipts.ReceiptKeys(SECRET), receipts.ReceiptKeys("other")
    key = {"sessionId": "s-1"}
    assert a.pseudonym("sessions", key) == a.pseudonym("sessions", dict(key))
    assert a.pseudonym("sessions", key) != b.pseudonym("sessions", key) != a.pseudonym("messages", key)
    assert receipts.canonical({"b": 1, "a": "ă"}) == '{"a":"ă","b":1}'.encode()


def test_kafka_holds_records_until_segment_and_retention_have_passed() -> None:
    retention = {
        "events": {"cleanup.policy": "delete", "retention.ms": "3600000", "segment.ms": "600000", "partitions": [0, 1, 2]},
        "compacted": {"cleanup.policy": "compact", "retention.ms": "3600000", "segment.ms": "600000", "partitions": [0]},
        "forever": {"cleanup.policy": "delete", "retention.ms": "-1", "segment.ms": "600000", "partitions": [0]},
        "missing": None,
    }
    held = {h["topic"]: h for h in kafka_holdings(retention, "demo-salon#u", "2026-11-24T08:00:00.000Z")}
    assert held["events"]["agedOutAt"] == "2026-11-24T09:00:00.000Z" and held["events"]["until"] == "2026-11-24T09:10:00.000Z"
    assert held["events"]["partition"] in (0, 1, 2)
    assert held["compacted"]["until"] is None and held["forever"]["until"] is None
    assert held["missing"] == {"topic": "missing", "exists": False, "until": None}


def test_a_receipt_signed_under_a_previous_key_still_verifies_after_the_key_is_replaced() -> None:
    from cryptography.fernet import Fernet

    from agentstream import receipt as receipts

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    signed = receipts.dumps(receipts.build(
        receipts.ReceiptKeys(old), business_id="b", user_id="+40721234567", forgotten_at="2026-12-07T10:00:00Z",
        issued_at="2026-12-07T10:00:01Z", tombstone={"streamId": "forgotten#b#+40721234567", "seq": 0},
        tombstone_present=True, tables={"events": "ev"}, deleted={}, left={}, kafka=[]))
    assert receipts.check(signed, [new, old]).valid, "the previous key, named by the receipt, verifies it"
    assert not receipts.check(signed, [new]).valid
    assert receipts.check(signed, old).valid
