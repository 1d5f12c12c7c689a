"""End to end from a signed webhook to a reply delivered to the vendor's API (local fakes that
speak the Meta Graph, Twilio and Gmail shapes), and bad input that changes nothing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.dynamo.client import dynamodb_client
from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, log_events, run_sync, running_stack, set_credentials, settings_of
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints

META = {"appSecret": "app-secret-1", "verifyToken": "verify-1", "accessToken": "meta-token-1"}
TWILIO = {"accountSid": "AC123", "authToken": "twilio-token-1", "fromNumber": "+40700000000"}
GMAIL = {"pushToken": "push-1", "accessToken": "gmail-token-1"}
GMAIL_REFRESHING = {"pushToken": "push-r", "accessToken": "expired-0", "refreshToken": "refresh-r",
                    "clientId": "client-r", "clientSecret": "client-secret-r"}


@pytest.fixture(scope="module")
def vendors() -> Iterator[VendorServer]:
    with VendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(endpoints: Endpoints, vendors: VendorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = isolated_env(endpoints, **vendors.env())
    with running_stack(env, tmp_path_factory.mktemp("logs")) as running:
        for provider, values in (("meta", META), ("twilio", TWILIO), ("gmail", GMAIL)):
            set_credentials(running.env, "demo-salon", provider, values)
        yield running


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def meta_post(stack: RunningStack, body: dict, secret: str = META["appSecret"], business: str = "demo-salon") -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(f"{stack.base_url}/webhooks/meta/{business}", content=raw,
                      headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})


def whatsapp_body(wa_id: str, texts: list[tuple[str, str]]) -> dict:
    messages = [{"from": wa_id, "id": mid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": t}} for mid, t in texts]
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN1", "display_phone_number": "40700"},
        "contacts": [{"wa_id": wa_id}], "messages": messages}}]}]}


def test_meta_handshake(stack: RunningStack) -> None:
    url = f"{stack.base_url}/webhooks/meta/demo-salon"
    ok = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "verify-1", "hub.challenge": "123"})
    assert ok.status_code == 200 and ok.text == "123"
    assert httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}).status_code == 403


def test_whatsapp_messages_are_answered_through_the_graph_api(stack: RunningStack, vendors: VendorServer) -> None:
    text = "Bună! Aveți loc mâine la tuns? 💇‍♀️"
    resp = meta_post(stack, whatsapp_body("40711111111", [("wamid.A1", text), ("wamid.A2", "Și cât costă?")]))
    assert resp.status_code == 200 and resp.json()["received"] == 2
    def replies() -> list[Any]:  # not the read receipts with a typing indicator shown while a reply is prepared
        return [r for r in vendors.state.sent("/graph/PN1/messages") if r.json.get("status") != "read"]

    sent = wait_for(lambda: len(replies()) >= 2 and replies())
    assert all(r.headers["authorization"] == "Bearer meta-token-1" for r in sent)
    assert {r.json["to"] for r in sent} == {"40711111111"} and all(r.json["type"] == "text" for r in sent)
    events = log_events(stack.env, "demo-salon#40711111111")
    assert [e.payload.content for e in events if e.type == "MessageReceived"] == [text, "Și cât costă?"]
    wait_for(lambda: len([e for e in log_events(stack.env, "demo-salon#40711111111") if e.type == "ReplyDelivered"]) == 2)


def test_webhook_replayed_three_times_is_one_event(stack: RunningStack) -> None:
    body = whatsapp_body("40722222222", [("wamid.R1", "salut")])
    for _ in range(3):
        assert meta_post(stack, body).status_code == 200
    events = wait_for(lambda: [e for e in log_events(stack.env, "demo-salon#40722222222") if e.type == "ReplyGenerated"])
    assert len([e for e in log_events(stack.env, "demo-salon#40722222222") if e.type == "MessageReceived"]) == 1
    assert len(events) == 1


@pytest.mark.parametrize("case, expected", [("bad-signature", 403), ("malformed", 400), ("unknown-business", 403),
                                            ("too-big", 413), ("bad-utf8", 400), ("missing-fields", 400)])
def test_bad_meta_input_is_refused_and_changes_nothing(stack: RunningStack, case: str, expected: int) -> None:
    url = f"{stack.base_url}/webhooks/meta/demo-salon"
    if case == "bad-signature":
        resp = meta_post(stack, whatsapp_body("40733333333", [("wamid.X", "hi")]), secret="wrong")
    elif case == "unknown-business":
        resp = meta_post(stack, whatsapp_body("40733333333", [("wamid.X", "hi")]), business="nobody")
    elif case == "missing-fields":
        resp = meta_post(stack, {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{"id": "x"}]}}]}]})
    else:
        raw = {"malformed": b"{not json", "too-big": b"x" * (300 * 1024), "bad-utf8": b'{"object": "\xff\xfe"}'}[case]
        sig = "sha256=" + hmac.new(META["appSecret"].encode(), raw, hashlib.sha256).hexdigest()
        resp = httpx.post(url, content=raw, headers={"X-Hub-Signature-256": sig})
    assert resp.status_code == expected, resp.text
    assert "error" in resp.json()
    if case in ("bad-signature", "unknown-business"):
        assert resp.json() == {"error": "X-Hub-Signature-256 missing or not valid for this business"}, "the same answer"
    assert log_events(stack.env, "demo-salon#40733333333") == []


def test_messenger_echoes_are_ignored(stack: RunningStack, vendors: VendorServer) -> None:
    body = {"object": "page", "entry": [{"id": "PAGE1", "time": 1, "messaging": [
        {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE1"}, "timestamp": int(time.time() * 1000), "message": {"mid": "m.1", "text": "<script>alert(1)</script>"}},
        {"sender": {"id": "PAGE1"}, "recipient": {"id": "PSID1"}, "timestamp": int(time.time() * 1000), "message": {"mid": "m.2", "text": "echo", "is_echo": True}},
    ]}]}
    assert meta_post(stack, body).json()["received"] == 1
    sent = wait_for(lambda: vendors.state.sent("/graph/me/messages"))
    assert sent[0].json["recipient"] == {"id": "PSID1"}
    (event,) = [e for e in log_events(stack.env, "demo-salon#PSID1") if e.type == "MessageReceived"]
    assert event.payload.content == "<script>alert(1)</script>" and event.channel == "messenger"


def twilio_post(stack: RunningStack, form: dict[str, str], token: str = TWILIO["authToken"]) -> httpx.Response:
    url = f"{stack.base_url}/webhooks/twilio/demo-salon"
    signature = RequestValidator(token).compute_signature(url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})


def test_twilio_sms_and_whatsapp_are_answered_through_the_messages_api(stack: RunningStack, vendors: VendorServer) -> None:
    sms = {"MessageSid": "SM1", "From": "+40744444444", "To": "+40700000000", "Body": "שלום, ce program aveți?", "NumMedia": "0"}
    wa = {"MessageSid": "SM2", "From": "whatsapp:+40755555555", "To": "whatsapp:+40700000000", "Body": "Salut", "NumMedia": "1",
          "MediaUrl0": "https://example.invalid/m.jpg", "MediaContentType0": "image/jpeg"}
    for form in (sms, wa, sms):
        resp = twilio_post(stack, form)
        assert resp.status_code == 200 and resp.text.startswith("<?xml") and "<Response></Response>" in resp.text
    sent = wait_for(lambda: len(vendors.state.sent("/Messages.json")) >= 2 and vendors.state.sent("/Messages.json"))
    assert {(r.form["From"], r.form["To"]) for r in sent} == {("+40700000000", "+40744444444"), ("whatsapp:+40700000000", "whatsapp:+40755555555")}
    assert all(r.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:twilio-token-1").decode() for r in sent)
    (wa_event,) = [e for e in log_events(stack.env, "demo-salon#+40755555555") if e.type == "MessageReceived"]
    assert wa_event.channel == "whatsapp" and wa_event.payload.attachments[0].contentType == "image/jpeg"
    (sms_event,) = [e for e in log_events(stack.env, "demo-salon#+40744444444") if e.type == "MessageReceived"]
    assert sms_event.payload.content == "שלום, ce program aveți?", "right-to-left text and diacritics intact"


def test_twilio_bad_signature_is_403(stack: RunningStack) -> None:
    form = {"MessageSid": "SM9", "From": "+40766666666", "To": "+40700000000", "Body": "x"}
    assert twilio_post(stack, form, token="wrong").status_code == 403
    assert log_events(stack.env, "demo-salon#+40766666666") == []


def gmail_message(mid: str, sender: str, text: str) -> dict:
    body = base64.urlsafe_b64encode((text + "\n\nOn Mon, 1 Jan 2026 Salon wrote:\n> old text").encode()).decode()
    return {"id": mid, "threadId": "T1", "labelIds": ["INBOX"], "internalDate": str(int(time.time() * 1000)), "payload": {
        "mimeType": "multipart/alternative", "headers": [
            {"name": "From", "value": f"Client <{sender}>"}, {"name": "Subject", "value": "Programare"},
            {"name": "Message-ID", "value": f"<{mid}@mail.example>"}],
        "parts": [{"mimeType": "text/plain", "body": {"data": body}}]}}


def test_gmail_push_fetches_the_message_and_answers_in_the_thread(stack: RunningStack, vendors: VendorServer) -> None:
    vendors.state.gmail_messages["G1"] = gmail_message("G1", "Ana@Example.com", "Bună ziua, aș dori o programare.")
    vendors.state.gmail_history.append("G1")
    data = base64.b64encode(json.dumps({"emailAddress": "salon@example.com", "historyId": 100}).encode()).decode()
    push = {"message": {"data": data, "messageId": "p1"}, "subscription": "projects/x/subscriptions/y"}
    url = f"{stack.base_url}/webhooks/gmail/demo-salon"
    assert httpx.post(url, params={"token": "wrong"}, json=push).status_code == 403
    for _ in range(2):
        assert httpx.post(url, params={"token": "push-1"}, json=push).status_code == 200
    (sent,) = wait_for(lambda: vendors.state.sent("/messages/send"))
    mime = base64.urlsafe_b64decode(sent.json["raw"]).decode()
    assert sent.json["threadId"] == "T1" and "In-Reply-To: <G1@mail.example>" in mime and "Subject: Re: Programare" in mime
    (event,) = [e for e in log_events(stack.env, "demo-salon#ana@example.com") if e.type == "MessageReceived"]
    assert event.payload.content == "Bună ziua, aș dori o programare."


def stored_gmail(stack: RunningStack, business: str) -> tuple[dict[str, str], str]:
    """A business's gmail credentials as the gateway reads them, and the raw item as stored."""
    s = settings_of(stack)

    async def run() -> tuple[dict[str, str], str]:
        async with dynamodb_client(s) as ddb:
            raw = await ddb.get_item(TableName=s.tables.credentials, Key={"businessId": {"S": business}, "provider": {"S": "gmail"}})
            return await CredentialStore(ddb, s.tables.credentials, s.credentials_key).get(business, "gmail"), str(raw)

    return run_sync(run())


def test_gmail_refreshes_an_expired_access_token_and_stores_the_new_one(stack: RunningStack, vendors: VendorServer) -> None:
    """The token endpoint hands out an expired token first, then a fresh one; Gmail answers 401
    to expired ones. A refresh is tried once per call, so the first push fails (Pub/Sub retries),
    the second is read with the fresh token, and the reply goes out with it."""
    set_credentials(stack.env, "demo-restaurant", "gmail", GMAIL_REFRESHING)
    vendors.state.gmail_refused |= {"expired-0", "expired-1"}
    vendors.state.google_tokens[:] = ["expired-1", "fresh-2"]
    vendors.state.gmail_messages["G2"] = gmail_message("G2", "bob@example.com", "A table for two tonight?")
    vendors.state.gmail_history[:] = ["G2"]
    data = base64.b64encode(json.dumps({"emailAddress": "diner@example.com", "historyId": 200}).encode()).decode()
    push = {"message": {"data": data, "messageId": "p2"}, "subscription": "projects/x/subscriptions/y"}
    url = f"{stack.base_url}/webhooks/gmail/demo-restaurant"
    assert httpx.post(url, params={"token": "push-r"}, json=push).status_code == 503
    assert httpx.post(url, params={"token": "push-r"}, json=push).json() == {"received": 1}
    (sent,) = wait_for(lambda: [r for r in vendors.state.sent("/messages/send") if "bob@example.com" in base64.urlsafe_b64decode(r.json["raw"]).decode()])
    assert sent.headers["authorization"] == "Bearer fresh-2"
    grants = vendors.state.sent("/google/token")
    assert [g.form["refresh_token"] for g in grants] == ["refresh-r", "refresh-r"]
    assert all(g.form["client_id"] == "client-r" and g.form["client_secret"] == "client-secret-r" for g in grants)
    creds, raw = stored_gmail(stack, "demo-restaurant")
    assert creds["accessToken"] == "fresh-2" and int(creds["tokenExpiry"]) > time.time() + 3000
    assert not any(secret in raw for secret in ("fresh-2", "refresh-r", "client-secret-r")), "stored encrypted"
    wait_for(lambda: [e for e in log_events(stack.env, "demo-restaurant#bob@example.com") if e.type == "ReplyDelivered"])


def whatsapp_value(wa_id: str, **value: object) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "PN1", "display_phone_number": "40700"}, **value}}]}]}


def signed_in(stack: RunningStack) -> httpx.Client:
    """The owner's browser, signed in to the inbox with the business's API key."""
    browser = httpx.Client(base_url=stack.base_url, timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/inbox").text).group(1)  # type: ignore[union-attr]
    signed = browser.post("/inbox/sign-in", data={"csrf": csrf, "apiKey": stack.api_keys["demo-salon"], "name": "Ana"})
    assert signed.status_code == 303, signed.text
    return browser


def test_a_reaction_and_a_read_status_are_recorded_against_the_reply_and_shown(stack: RunningStack, vendors: VendorServer) -> None:
    wa_id, stream = "40712121212", "demo-salon#40712121212"
    assert meta_post(stack, whatsapp_body(wa_id, [("wamid.K1", "Aveți loc joi?")])).status_code == 200
    delivered = wait_for(lambda: [e for e in log_events(stack.env, stream) if e.type == "ReplyDelivered"])[0]
    wamid = delivered.payload.externalId
    ts = str(int(time.time()))
    reaction = {"from": wa_id, "id": "wamid.K2", "timestamp": ts, "type": "reaction", "reaction": {"message_id": wamid, "emoji": "👍"}}
    assert meta_post(stack, whatsapp_value(wa_id, contacts=[{"wa_id": wa_id}], messages=[reaction])).status_code == 200
    status = {"id": wamid, "status": "read", "timestamp": ts, "recipient_id": wa_id}
    assert meta_post(stack, whatsapp_value(wa_id, statuses=[status])).json() == {"received": 0, "statuses": 1}
    assert meta_post(stack, whatsapp_value(wa_id, statuses=[status])).status_code == 200  # a resent status: once
    events = wait_for(lambda: [e for e in log_events(stack.env, stream) if e.type == "ReplyStatusReported"] and log_events(stack.env, stream))
    (reacted,) = [e for e in events if e.type == "MessageReceived" and e.payload.kind == "reaction"]
    assert reacted.payload.reactsTo == delivered.payload.replyEventId and reacted.payload.content == "👍"
    (read,) = [e for e in events if e.type == "ReplyStatusReported"]
    assert (read.payload.replyEventId, read.payload.status, read.payload.externalId) == (delivered.payload.replyEventId, "read", wamid)
    reply = next(e for e in events if e.type == "ReplyGenerated")
    with contextlib.closing(signed_in(stack)) as browser:
        page = wait_for(lambda: (p := browser.get(f"/inbox/conversations/{reply.payload.sessionId}").text)
                        and "👍" in p and 'class="delivery read"' in p and p)
    assert 'class="reactions"' in page
    time.sleep(2)  # the worker had time to answer the reaction, were it to
    assert [e.type for e in log_events(stack.env, stream)].count("ReplyGenerated") == 1, "a reaction gets no reply"
    verified = subprocess.run([sys.executable, "-m", "agentstream.cli", "replay", "--business", "demo-salon", "--user", wa_id,
                               "--verify"], env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "no differences" in verified.stderr, verified.stdout + verified.stderr


def test_a_button_reply_is_answered_as_its_title(stack: RunningStack, vendors: VendorServer) -> None:
    wa_id, stream = "40713131313", "demo-salon#40713131313"
    button = {"from": wa_id, "id": "wamid.B1", "timestamp": str(int(time.time())), "type": "interactive",
              "interactive": {"type": "button_reply", "button_reply": {"id": "book-thu-10", "title": "Da, joi la 10"}}}
    assert meta_post(stack, whatsapp_value(wa_id, contacts=[{"wa_id": wa_id}], messages=[button])).status_code == 200
    reply = wait_for(lambda: [e for e in log_events(stack.env, stream) if e.type == "ReplyGenerated"])[0]
    (inbound,) = [e for e in log_events(stack.env, stream) if e.type == "MessageReceived"]
    assert (inbound.payload.kind, inbound.payload.content, inbound.payload.payloadId) == ("button", "Da, joi la 10", "book-thu-10")
    assert reply.payload.inReplyTo == inbound.eventId
    wait_for(lambda: [r for r in vendors.state.sent("/graph/PN1/messages") if r.json.get("to") == wa_id])


def test_a_twilio_status_callback_is_recorded_against_the_reply(stack: RunningStack, vendors: VendorServer) -> None:
    phone, stream = "+40714141414", "demo-salon#+40714141414"
    assert twilio_post(stack, {"MessageSid": "SMK1", "From": phone, "To": "+40700000000", "Body": "Bună", "NumMedia": "0"}).status_code == 200
    delivered = wait_for(lambda: [e for e in log_events(stack.env, stream) if e.type == "ReplyDelivered"])[0]
    (sent,) = [r for r in vendors.state.sent("/Messages.json") if r.form["To"] == phone]
    url = sent.form["StatusCallback"]
    assert url == f"{stack.base_url}/webhooks/twilio/demo-salon/status"
    form = {"MessageSid": delivered.payload.externalId, "MessageStatus": "undelivered", "ErrorCode": "30005"}
    refused = httpx.post(url, data=form, headers={"X-Twilio-Signature": RequestValidator("wrong").compute_signature(url, form)})
    assert refused.status_code == 403
    signed = httpx.post(url, data=form, headers={"X-Twilio-Signature": RequestValidator(TWILIO["authToken"]).compute_signature(url, form)})
    assert signed.status_code == 200
    (status,) = [e for e in log_events(stack.env, stream) if e.type == "ReplyStatusReported"]
    assert (status.payload.status, status.payload.error, status.payload.replyEventId) == (
        "failed", "Twilio error 30005", delivered.payload.replyEventId)


def test_no_secret_reaches_the_logs(stack: RunningStack) -> None:
    """The tests above used every channel's secrets (and refused wrong ones); no log line of
    any process holds one of them."""
    logs = {p.name: p.read_text(errors="replace") for p in stack.logs.glob("*.log")}
    assert {"bridge.log", "worker.log", "gateway.log"} <= set(logs) and all(logs.values())
    secrets = [META["appSecret"], META["verifyToken"], META["accessToken"], TWILIO["authToken"],
               GMAIL["pushToken"], GMAIL["accessToken"], stack.env["AGENTSTREAM_SECRET_KEY"], *stack.api_keys.values(),
               *GMAIL_REFRESHING.values(), "expired-1", "fresh-2"]
    leaks = [(name, s) for name, text in logs.items() for s in secrets if s in text]
    assert leaks == []
