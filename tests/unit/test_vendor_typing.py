"""A `typing` signal reaches WhatsApp and Messenger through the channel registry's typing signal;
other channels, and a business without credentials, get nothing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx

from agentstream.streams.outbound import typing_sender
from tests.fakes.vendors import VendorServer


class Creds:
    async def get(self, business_id: str, provider: str) -> dict[str, str] | None:
        return {"accessToken": "tok"} if business_id == "b" else None


def settings(base: str) -> Any:
    return SimpleNamespace(public_base_url="https://agent.example", setting=lambda env, default: f"{base}/graph")


def signal(channel: str, to: dict[str, str], business: str = "b") -> dict[str, Any]:
    return {"type": "typing", "streamId": f"{business}#u", "businessId": business, "channel": channel,
            "deliverTo": to, "reading": "wamid.IN1"}


async def test_whatsapp_and_messenger_show_typing_and_others_do_not() -> None:
    with VendorServer() as vendors:
        async with httpx.AsyncClient() as http:
            show = typing_sender(SimpleNamespace(credentials=Creds(), http=http), settings(vendors.base))
            await show(signal("whatsapp", {"phone_number_id": "PN", "to": "40711"}))
            await show(signal("messenger", {"page_id": "P1", "to": "PSID1"}))
            await show(signal("sms", {"via": "twilio", "from": "+1", "to": "+4"}))
            await show(signal("whatsapp", {"phone_number_id": "PN", "to": "40711"}, business="no-creds"))
    sent = [(r.path, r.json) for r in vendors.state.sent("/")]
    assert ("/graph/PN/messages", {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
                                   "typing_indicator": {"type": "text"}}) in sent
    assert any(body.get("sender_action") == "typing_on" for _, body in sent)
    assert len(sent) == 2
