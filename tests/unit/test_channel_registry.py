"""The channel registry: one place declares each channel's window, identity and what it can
send; asking a channel for what it cannot do is a clear error; the generated catalog is current."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import httpx
import pytest

from agentstream import channel_specs
from agentstream.adapters.channels import meta, registry, twilio
from agentstream.adapters.channels.base import Media, Reaction, SendCall, Template, Text, Typing, Unsupported
from agentstream.adapters.dynamo.credentials import CredentialsError, validate
from tests.fakes.vendors import VendorServer


def test_the_generated_catalog_is_current() -> None:
    assert channel_specs.CATALOG.read_text(encoding="utf-8") == registry.render_catalog(), "run `agentstream schemas`"


def test_windows_are_declared_once_and_cover_instagram() -> None:
    windows = {name: channel_specs.window_hours(name) for name in channel_specs.names()}
    assert {name for name, hours in windows.items() if hours} == {"whatsapp", "messenger", "instagram"}
    assert {windows["whatsapp"], windows["messenger"], windows["instagram"]} == {24}
    assert channel_specs.identity("sms") == channel_specs.identity("whatsapp") == "phone"
    assert channel_specs.identity("gmail") == "email" and channel_specs.identity("websocket") is None


def test_the_provider_of_a_conversation_is_the_one_it_came_through() -> None:
    assert registry.provider_for("whatsapp", {"via": "twilio"}).name == "twilio"
    assert registry.provider_for("whatsapp", {"phone_number_id": "PN"}).name == "meta"
    assert registry.provider_for("sms", {}).name == "twilio"
    with pytest.raises(registry.UnknownChannel, match="fax"):
        registry.provider_for("fax", {})
    with pytest.raises(registry.UnknownChannel, match="known: "):
        registry.channel("fax")


def test_providers_of_one_channel_must_agree_on_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    odd = replace(twilio.PROVIDER, channels=(twilio.SMS, replace(twilio.WHATSAPP, window_hours=48)))
    monkeypatch.setattr(registry, "PROVIDERS", (meta.PROVIDER, odd))
    with pytest.raises(ValueError, match="'whatsapp'"):
        registry.check()


def test_credentials_come_from_the_providers_and_unknown_ones_are_refused() -> None:
    validate("twilio", {"accountSid": "AC", "authToken": "t"})
    with pytest.raises(CredentialsError, match="unknown provider 'fax'"):
        validate("fax", {})
    with pytest.raises(CredentialsError, match="keys: appSecret"):
        validate("meta", {"pin": "1"})


def _call(http: httpx.AsyncClient, channel: str, base: str, to: dict[str, str]) -> SendCall:
    creds = {"accessToken": "tok", "accountSid": "AC", "authToken": "t"}
    return SendCall("b", channel, creds, to, base, SimpleNamespace(http=http))


@pytest.mark.parametrize(("provider", "channel", "message", "what"), [
    ("gmail", "gmail", Template("reminder", "ro"), "template"),
    ("meta", "messenger", Reaction("👍", "m_1"), "reaction"),
    ("twilio", "sms", Typing(), "typing"),
    ("twilio", "sms", Template("HX1", "ro"), "template"),
])
async def test_asking_a_channel_for_what_it_cannot_show_is_a_clear_error(provider: str, channel: str, message: object,
                                                                        what: str) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(Unsupported, match=what):
            await registry.send(registry.provider(provider), _call(http, channel, "http://127.0.0.1:1", {}), message)  # type: ignore[arg-type]


async def test_a_whatsapp_template_and_an_image_reach_the_graph_api_in_metas_shapes() -> None:
    with VendorServer() as vendors:
        async with httpx.AsyncClient() as http:
            call = _call(http, "whatsapp", f"{vendors.base}/graph", {"phone_number_id": "PN", "to": "40711"})
            await registry.send(meta.PROVIDER, call, Template("appointment_reminder", "ro", ("Ana", "joi 10:00")))
            await registry.send(meta.PROVIDER, call, Media("image", "https://cdn.example/p.jpg", "Culoarea"))
            await registry.send(meta.PROVIDER, call, Typing(reading="wamid.IN1"))
            await registry.send(meta.PROVIDER, call, Reaction("👍", "wamid.IN1"))
    template, image, typing, reaction = [r.json for r in vendors.state.sent("/graph/PN/messages")]
    assert template == {"messaging_product": "whatsapp", "to": "40711", "type": "template", "template": {
        "name": "appointment_reminder", "language": {"code": "ro"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "joi 10:00"}]}]}}
    assert image == {"messaging_product": "whatsapp", "to": "40711", "type": "image",
                     "image": {"link": "https://cdn.example/p.jpg", "caption": "Culoarea"}}
    assert typing == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
                      "typing_indicator": {"type": "text"}}
    assert reaction["reaction"] == {"message_id": "wamid.IN1", "emoji": "👍"}
    assert vendors.state.refused == []


async def test_twilio_sends_media_and_content_templates_with_a_status_callback() -> None:
    with VendorServer() as vendors:
        async with httpx.AsyncClient() as http:
            call = replace(_call(http, "whatsapp", f"{vendors.base}/twilio", {"via": "twilio", "from": "whatsapp:+1", "to": "whatsapp:+4"}),
                           public_base="https://agent.example")
            await registry.send(twilio.PROVIDER, call, Template("HX123", "ro", ("Ana",)))
            await registry.send(twilio.PROVIDER, call, Media("image", "https://cdn.example/p.jpg"))
            await registry.send(twilio.PROVIDER, call, Text("Bună"))
    template, image, text = [r.form for r in vendors.state.sent("/Messages.json")]
    assert template["ContentSid"] == "HX123" and template["ContentVariables"] == '{"1": "Ana"}'
    assert image["MediaUrl"] == "https://cdn.example/p.jpg" and text["Body"] == "Bună"
    assert text["StatusCallback"] == "https://agent.example/webhooks/twilio/b/status"
