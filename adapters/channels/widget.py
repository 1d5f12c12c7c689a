"""The chat widget: visitors on the business's page, over the gateway's WebSocket. Its replies
go out on the customer's open socket (the gateway's hub), not through a vendor."""

from __future__ import annotations

from agentstream.adapters.channels.base import CredentialSpec, EventChannel, Provider

WEBSOCKET = EventChannel("websocket", "Web chat", delivery="socket", client_ids=True, source="websocket",
                         max_text=16_000, can=frozenset({"text", "typing"}))

PROVIDER = Provider(
    name="widget",
    channels=(WEBSOCKET,),
    credentials=CredentialSpec(("signingKey",), generated="signingKey", keep_previous={"signingKey": "previousSigningKey"}),
)
