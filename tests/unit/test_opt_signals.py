"""WhatsApp's own opt-out signal: a signed `user_preferences` webhook (the customer stopped or
resumed the business's marketing messages in the app, without writing) becomes CustomerOptedOut /
CustomerOptedIn by `vendor`, once per signal, and the worker folds it as it folds a STOP. On the
gateway over moto's DynamoDB; the body is the fake vendor's, in Meta's documented shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from agentstream.adapters.channels import meta
from agentstream.adapters.channels.errors import BadRequest
from agentstream.events import stream_id
from agentstream.projections.optout import opted_out
from tests.fakes.vendors import whatsapp_user_preferences
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture
from tests.unit.test_dead_letters import Worker

META = {"appSecret": "app-secret-1", "verifyToken": "verify-1", "accessToken": "meta-token-1"}
WA_ID = "40711000111"
AT = 1764000000


async def post(gw: MotoGateway, body: dict[str, Any], secret: str = META["appSecret"]) -> httpx.Response:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return await gw.http.post(f"/webhooks/meta/{gw.business}", content=raw,
                              headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"})


async def test_a_signed_user_preferences_webhook_opts_the_customer_out_then_back_in(moto_gateway: MotoGateway) -> None:
    gw = moto_gateway
    await gw.d.credentials.set(gw.business, "meta", META)
    stream = stream_id(gw.business, WA_ID)
    stop = whatsapp_user_preferences(WA_ID, "stop", AT)
    assert (await post(gw, stop, "not-the-secret")).status_code == 403
    assert await gw.d.store.read(stream) == [], "an unsigned signal changes nothing"
    for _ in range(2):  # Meta retries a webhook it thinks failed: one event
        answered = await post(gw, stop)
        assert answered.status_code == 200 and answered.json() == {"received": 0, "statuses": 0}
    (out,) = await gw.d.store.read(stream)
    assert (out.type, out.payload.by, out.payload.keyword, out.channel) == ("CustomerOptedOut", "vendor", "vendor:STOP", "whatsapp")
    assert out.occurredAt.timestamp() == AT

    worker = Worker(gw.d.ddb, gw.d.settings, gw.business, WA_ID)
    await worker.drain()
    assert opted_out(await worker.memory()), "folded as a STOP: no nudge, no reminder from then on"

    assert (await post(gw, whatsapp_user_preferences(WA_ID, "resume", AT + 60))).status_code == 200
    await worker.drain()
    assert [e.type for e in await gw.d.store.read(stream)] == ["CustomerOptedOut", "CustomerOptedIn"]
    assert not opted_out(await worker.memory())


def test_only_marketing_stop_and_resume_are_signals() -> None:
    def body(**change: Any) -> bytes:
        sent = whatsapp_user_preferences(WA_ID, "stop", AT)
        sent["entry"][0]["changes"][0]["value"]["user_preferences"][0].update(change)
        return json.dumps(sent).encode()

    (signal,) = meta.preferences(body())
    assert (signal.user_id, signal.channel, signal.signal) == (WA_ID, "whatsapp", "STOP")
    assert [s.signal for s in meta.preferences(body(value="resume"))] == ["START"]
    assert meta.preferences(body(category="something_else")) == []
    assert meta.preferences(body(value="interested")) == []
    with pytest.raises(BadRequest):
        meta.preferences(b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "user_preferences", '
                         b'"value": {"user_preferences": [{"category": "marketing_messages", "value": "stop"}]}}]}]}')
