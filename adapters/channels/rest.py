"""The REST API (`POST /v1/messages` with a business's API key): the client polls for replies."""

from __future__ import annotations

from agentstream.adapters.channels.base import CredentialSpec, EventChannel, Provider

REST = EventChannel("rest", "API", delivery="poll", client_ids=True, max_text=16_000)

PROVIDER = Provider(
    name="rest",
    channels=(REST,),
    credentials=CredentialSpec(("apiKey",), generated="apiKey", hashed={"apiKey": "apiKeyHash"}),
)
