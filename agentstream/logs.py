"""structlog JSON logs with correlation ids; secrets are redacted before rendering, and a
customer's id (a phone number, an email) is replaced by a short keyed hash: the same customer
gives the same hash in every line of every process sharing the secret key, and the id cannot be
read back from it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sys
from typing import Any

import structlog

SECRET_WORDS = ("secret", "token", "password", "apikey", "api_key", "authorization", "signature", "signingkey", "credential")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for name in list(event):
        if name != "event" and any(word in name.lower() for word in SECRET_WORDS) and not name.endswith("Id"):
            event[name] = "***"
    return event


CUSTOMER_FIELDS = ("userId", "user_id", "user", "customer", "sender", "phone", "email")
STREAM_FIELDS = ("streamId", "stream_id")
_pseudonym_key = secrets.token_bytes(32)  # replaced by one derived from the secret key, when set


def customer_hash(user_id: str) -> str:
    """The short keyed hash a log line shows instead of a customer's id."""
    return "u:" + hmac.new(_pseudonym_key, user_id.encode(), hashlib.sha256).hexdigest()[:12]


def _pseudonymise(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for name in CUSTOMER_FIELDS:
        if isinstance(event.get(name), str):
            event[name] = customer_hash(event[name])
    for name in STREAM_FIELDS:
        value = event.get(name)
        if isinstance(value, str) and "#" in value:  # businessId#userId: the business stays readable
            business, _, user = value.partition("#")
            event[name] = f"{business}#{customer_hash(user)}"
    return event


def configure(level: str = "INFO", fmt: str = "json", secret_key: str | None = None) -> None:
    """Configure structlog and the standard library once per process; `secret_key` keys the
    customers' hashes (without one, they hold within this process only)."""
    global _pseudonym_key
    if secret_key:
        from agentstream.keys import derive

        _pseudonym_key = derive(secret_key, "agentstream/log-pseudonyms")
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(stream=sys.stderr, level=numeric if isinstance(numeric, int) else logging.INFO, format="%(message)s")
    for noisy in ("aiokafka", "botocore", "aiobotocore", "faust", "mode", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            _pseudonymise,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric if isinstance(numeric, int) else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
