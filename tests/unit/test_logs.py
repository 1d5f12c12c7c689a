"""Secret-looking fields never reach a log line; ids and ordinary fields do."""

from __future__ import annotations

import stat
from pathlib import Path

from agentstream.logs import _redact


def test_secret_fields_are_redacted_and_ids_kept() -> None:
    line = _redact(None, "info", {"event": "sent", "authToken": "tok-1", "appSecret": "sec-1", "Authorization": "Bearer k",
                                  "apiKey": "key-1", "verify_token": "v", "accountSid": "AC1", "tokenId": "t-9",
                                  "text": "hello", "eventId": "e1"})
    assert line == {"event": "sent", "authToken": "***", "appSecret": "***", "Authorization": "***", "apiKey": "***",
                    "verify_token": "***", "accountSid": "AC1", "tokenId": "t-9", "text": "hello", "eventId": "e1"}


def test_a_customers_id_is_a_short_keyed_hash_the_business_stays_readable() -> None:
    from agentstream import logs

    logs.configure("INFO", "json", "k" * 43 + "=")
    line = logs._pseudonymise(None, "info", {"event": "ingest.message", "streamId": "demo-salon#+40721234567",
                                             "userId": "ana@example.com", "eventId": "e1"})
    assert line["streamId"].startswith("demo-salon#u:") and "+4072" not in str(line) and "ana@" not in str(line)
    assert line["userId"] == logs.customer_hash("ana@example.com") and line["eventId"] == "e1"
    assert logs.customer_hash("+40721234567") == line["streamId"].split("#")[1], "one customer, one hash"
    logs.configure("INFO", "json", "j" * 43 + "=")
    assert logs.customer_hash("ana@example.com") != line["userId"], "keyed: another secret gives another hash"


def test_log_files_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    from agentstream.local.services import open_log

    old = tmp_path / "logs" / "old.log"
    old.parent.mkdir()
    old.write_text("earlier\n")
    old.chmod(0o644)
    for path in (tmp_path / "logs" / "gateway.log", old):
        with open_log(path) as out:
            out.write(b"line\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert old.read_text() == "earlier\nline\n"
