"""The refusal every API answer is made from: an HTTP status and a message."""

from __future__ import annotations


class HttpError(Exception):
    headers: dict[str, str] = {}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
