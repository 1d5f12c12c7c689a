"""Erasure receipts (`agentstream forget --proof FILE`, `forget --check-proof FILE`): pure.

A receipt says what `forget` deleted (per table: a count and the keys), the tombstone it left,
how long each Kafka topic may still hold the customer's records, and how many of the
customer's items a read after the erasure still found (all zero for a complete erasure). It
names no customer: the user id and every key are HMAC-SHA256 pseudonyms under a key derived
from AGENTSTREAM_SECRET_KEY (a phone number's plain hash could be found by trying every
number; the pseudonyms can only be recomputed with the secret key). The receipt is signed:
HMAC-SHA256, under a second derived key, of the canonical JSON (sorted keys, no spaces, UTF-8)
of everything but its `signature` field, so a changed count, key or date, or another secret
key, fails the check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

from agentstream.keys import derive

KIND = "agentstream erasure receipt"
VERSION = 1
ALGORITHM = "HMAC-SHA256"


def canonical(value: Any) -> bytes:
    """The bytes a receipt is signed over: JSON with sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _derive(secret: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose (the one HKDF helper, with the receipts' labels of old, so
    receipts signed before keep verifying), never the secret key itself."""
    return derive(secret, f"agentstream-erasure-receipt/{purpose}")


class ReceiptKeys:
    """The keys one secret key gives: pseudonyms, the signature, and a key id naming the secret
    (a hint for "signed with another key"; it reveals nothing of it)."""

    def __init__(self, secret: str) -> None:
        self._pseudonym = _derive(secret, "pseudonym")
        self._signing = _derive(secret, "signature")
        self.key_id = hmac.new(_derive(secret, "key-id"), b"agentstream", hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, where: str, key: Any) -> str:
        """The HMAC of a key (or a customer) in one place; the same key gives the same pseudonym."""
        return hmac.new(self._pseudonym, canonical({"in": where, "key": key}), hashlib.sha256).hexdigest()

    def signature(self, body: dict[str, Any]) -> str:
        return hmac.new(self._signing, canonical(body), hashlib.sha256).hexdigest()


def build(keys: ReceiptKeys, *, business_id: str, user_id: str, forgotten_at: str, issued_at: str,
          tombstone: dict[str, Any], tombstone_present: bool, tables: dict[str, str],
          deleted: dict[str, list[dict[str, Any]]], left: dict[str, int], kafka: list[dict[str, Any]]) -> dict[str, Any]:
    """The signed receipt. `deleted`: per place (a `Tables` field, or "events" /
    "idempotency_records" in the events table) the plain keys deleted, pseudonymised here;
    `tables`: each place's table name; `left`: per place, the customer's items read after the
    erasure; `kafka`: per topic, how long it may hold records (no customer data in it)."""
    body: dict[str, Any] = {
        "receipt": KIND,
        "version": VERSION,
        "keyId": keys.key_id,
        "businessId": business_id,
        "customer": keys.pseudonym("customer", {"businessId": business_id, "userId": user_id}),
        "forgottenAt": forgotten_at,
        "issuedAt": issued_at,
        "tombstone": {"table": tables["events"], "key": keys.pseudonym("tombstone", tombstone),
                      "forgottenAt": forgotten_at, "present": tombstone_present},
        "deleted": {where: {"table": tables[where], "count": len(found),
                            "keys": sorted(keys.pseudonym(where, k) for k in found)}
                    for where, found in deleted.items()},
        "left": dict(left),
        "kafka": kafka,
    }
    return {**body, "signature": {"algorithm": ALGORITHM, "value": keys.signature(body)}}


def dumps(receipt: dict[str, Any]) -> str:
    """The receipt as its file holds it (indented; the check re-canonicalises, so layout is free)."""
    return json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Verdict:
    valid: bool
    line: str  # "receipt valid: …" or "receipt INVALID: …"


def _invalid(why: str) -> Verdict:
    return Verdict(False, f"receipt INVALID: {why}")


def _keys_for(receipt: Any, secrets: str | Sequence[str]) -> ReceiptKeys:
    """The keys of the secret the receipt names (a previous key signs old receipts), else the first."""
    candidates = [ReceiptKeys(s) for s in ([secrets] if isinstance(secrets, str) else secrets)]
    named = receipt.get("keyId") if isinstance(receipt, dict) else None
    return next((k for k in candidates if k.key_id == named), candidates[0])


def check(text: str, secret: str | Sequence[str]) -> Verdict:
    """Whether `text` is a receipt signed with `secret` (or any of several secrets: the current
    and previous keys) that proves a complete erasure: the signature matches, every count
    matches its keys, the tombstone was there, nothing was left."""
    try:
        receipt = json.loads(text)
    except ValueError as exc:
        return _invalid(f"not JSON ({exc})")
    if not isinstance(receipt, dict) or receipt.get("receipt") != KIND:
        return _invalid("not an agentstream erasure receipt")
    if receipt.get("version") != VERSION:
        return _invalid(f"receipt version {receipt.get('version')!r} is not one this agentstream reads ({VERSION})")
    keys = _keys_for(receipt, secret)
    signature = receipt.get("signature")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    try:
        expected = keys.signature(body)
    except ValueError as exc:
        return _invalid(f"malformed ({exc})")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM or not isinstance(signature.get("value"), str):
        return _invalid(f"no {ALGORITHM} signature")
    if not hmac.compare_digest(expected, signature["value"]):
        if receipt.get("keyId") != keys.key_id:
            return _invalid(f"signed with another secret key (the receipt names key {receipt.get('keyId')}, "
                            f"AGENTSTREAM_SECRET_KEY is key {keys.key_id}), or changed after signing")
        return _invalid("the signature does not match: the receipt was changed after it was signed")
    try:
        deleted: dict[str, Any] = receipt["deleted"]
        for where, entry in deleted.items():
            if entry["count"] != len(entry["keys"]):
                return _invalid(f"{where}: count {entry['count']} but {len(entry['keys'])} keys")
        left = {where: n for where, n in receipt["left"].items() if n}
        if left:
            return _invalid("signed, but the erasure was not complete: items left after it: "
                            + ", ".join(f"{where} {n}" for where, n in left.items()))
        if not receipt["tombstone"]["present"]:
            return _invalid("signed, but no tombstone was found after the erasure")
        return Verdict(True, "receipt valid: " + summary(receipt))
    except (KeyError, TypeError, AttributeError) as exc:
        return _invalid(f"malformed ({type(exc).__name__}: {exc})")


def summary(receipt: dict[str, Any]) -> str:
    """One line: whose erasure, when, what was deleted and left, and how long Kafka may keep records."""
    deleted = receipt["deleted"]
    counts = ", ".join(f"{where} {entry['count']}" for where, entry in deleted.items())
    left = sum(receipt["left"].values())
    ends = [t["until"] for t in receipt["kafka"] if t.get("until")]
    forever = [t["topic"] for t in receipt["kafka"] if t.get("exists") and not t.get("until")]
    kafka = f"Kafka may hold records until {max(ends)}" if ends else "no Kafka retention bound"
    if forever:
        kafka += f" ({', '.join(forever)}: until deleted by hand)"
    return (f"{receipt['businessId']} customer {receipt['customer'][:12]}… erased at {receipt['forgottenAt']}; "
            f"deleted {sum(e['count'] for e in deleted.values())} ({counts}); left {left}; {kafka}; "
            f"signed with key {receipt['keyId']}")
