"""Secret-looking fields never reach a log line; ids and ordinary fields do."""

from __future__ import annotations

from agentstream.logs import _redact


def test_secret_fields_are_redacted_and_ids_kept() -> None:
    line = _redact(None, "info", {"event": "sent", "authToken": "tok-1", "appSecret": "sec-1", "Authorization": "Bearer k",
                                  "apiKey": "key-1", "verify_token": "v", "accountSid": "AC1", "tokenId": "t-9",
                                  "text": "hello", "eventId": "e1"})
    assert line == {"event": "sent", "authToken": "***", "appSecret": "***", "Authorization": "***", "apiKey": "***",
                    "verify_token": "***", "accountSid": "AC1", "tokenId": "t-9", "text": "hello", "eventId": "e1"}
