"""structlog JSON logs with correlation ids; secrets are redacted before rendering."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_WORDS = ("secret", "token", "password", "apikey", "api_key", "authorization", "signature", "signingkey", "credential")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for name in list(event):
        if name != "event" and any(word in name.lower() for word in SECRET_WORDS) and not name.endswith("Id"):
            event[name] = "***"
    return event


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the standard library once per process."""
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
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric if isinstance(numeric, int) else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
