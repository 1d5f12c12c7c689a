"""Errors a webhook answers with: each carries its HTTP status and a message safe to show."""

from __future__ import annotations


class ChannelError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadSignature(ChannelError):
    status = 403


class BadRequest(ChannelError):
    status = 400


class RetryableError(Exception):
    """An outbound call worth retrying: 429, 5xx or a network error."""


class PermanentError(Exception):
    """An outbound call that will not succeed by retrying (other 4xx, missing credentials)."""


class Unauthorized(PermanentError):
    """401: the access token expired or was revoked; refreshing it may help."""
