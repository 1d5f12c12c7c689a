"""The idempotency keys are stored in the log: a retry is recognised only if the key is built
exactly as it was when the first event was appended, so their spelling is pinned here."""

from __future__ import annotations

from agentstream import idempotency as keys


def test_every_key_is_spelled_as_the_log_holds_it() -> None:
    assert [keys.inbound("whatsapp", "wamid.1"), keys.inbound("web", "c-1", "u-1"), keys.reply("e1"),
            keys.handoff_notice("e1"), keys.handoff_timeout_notice("h1"), keys.facts("e1"), keys.delivered("r1"),
            keys.sending("r1"), keys.sent("SM1"), keys.status("SM1", "read"), keys.skipped("e1"),
            keys.skipped("e1", 7), keys.unskipped("e1", 8), keys.owner_message("k"), keys.owner_facts("k"),
            keys.resolved("s1"), keys.expired("s1", "2026-01-01T00:00:00Z"), keys.nudge("s1"), keys.legacy("m1"),
            keys.selfcheck("u1", 2)] == [
        "whatsapp:wamid.1", "web:u-1:c-1", "reply:e1", "handoff:e1", "handoff-notice:h1", "facts:e1", "delivered:r1",
        "sending:r1", "sent:SM1", "status:SM1:read", "skipped:e1", "skipped:e1:after:7", "unskipped:e1:8",
        "owner-message:k", "owner-facts:k", "resolve:s1", "expire:s1:2026-01-01T00:00:00Z", "nudge:s1", "legacy:m1",
        "selfcheck:u1-2"]


def test_keys_of_different_kinds_never_meet() -> None:
    """One id under every kind gives as many keys: a reply's key is never a delivery's."""
    built = [keys.reply("x"), keys.handoff_notice("x"), keys.handoff_timeout_notice("x"), keys.facts("x"),
             keys.delivered("x"), keys.sending("x"), keys.sent("x"), keys.skipped("x"), keys.owner_message("x"),
             keys.owner_facts("x"), keys.resolved("x"), keys.nudge("x"), keys.legacy("x")]
    assert len(set(built)) == len(built)
