"""Webhook routes of the gateway (Meta, Twilio, Gmail)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def webhook_routes() -> list[BaseRoute]:
    return []
