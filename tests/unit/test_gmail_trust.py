"""Gmail you can trust: a push is Google's (its OIDC token checked with google-auth against
Google's certificates), the stored history position never moves past what Gmail's history says,
spam is skipped, and only a sender that passed DMARC becomes the customer's e-mail fact."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from agentstream.adapters.channels import gmail, google_oidc
from agentstream.adapters.channels.base import WebhookCall
from agentstream.adapters.channels.errors import BadSignature
from agentstream.events import new_event
from agentstream.projections.base import FoldConfig
from agentstream.projections.facts import FACTS
from agentstream.settings import Settings
from tests.fakes.vendors import VendorServer

AUDIENCE, ACCOUNT = "https://agent.example/webhooks/gmail", "push@project.iam.gserviceaccount.com"


def _key_and_cert() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode(), cert.public_bytes(serialization.Encoding.PEM).decode()


GOOGLE_KEY, GOOGLE_CERT = _key_and_cert()
OTHER_KEY, _ = _key_and_cert()


def token(key: str = GOOGLE_KEY, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": ACCOUNT, "email_verified": True,
               "iat": now, "exp": now + 3600, "sub": "1"} | claims
    return jwt.encode(crypt.RSASigner.from_string(key, key_id=kid), payload).decode()


@pytest.fixture
def vendors() -> Any:
    with VendorServer() as server:
        server.state.google_certs = {"k1": GOOGLE_CERT}
        google_oidc.CERTS._certs.clear()
        yield server


async def test_a_push_signed_by_google_for_our_audience_and_account_passes(vendors: VendorServer) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            await google_oidc.verify_push(http, f"Bearer {token()}", AUDIENCE, ACCOUNT, f"{vendors.base}/google/certs")
    assert len([r for r in vendors.state.requests if r.path == "/google/certs"]) == 1, "the certificates are cached"


REFUSED = {  # what is wrong with the push's Authorization header -> the header
    "none": lambda: None,
    "not a bearer": lambda: "Basic x",
    "not a jwt": lambda: "Bearer not-a-jwt",
    "signed by another key": lambda: f"Bearer {token(OTHER_KEY)}",
    "another audience": lambda: f"Bearer {token(aud='https://elsewhere')}",
    "another service account": lambda: f"Bearer {token(email='intruder@evil.example')}",
    "an unverified e-mail": lambda: f"Bearer {token(email_verified=False)}",
    "not issued by Google": lambda: f"Bearer {token(iss='https://evil.example')}",
    "expired": lambda: f"Bearer {token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)}",
    "an unknown key id": lambda: f"Bearer {token(kid='unknown')}",
}


@pytest.mark.parametrize("wrong", sorted(REFUSED))
async def test_any_other_push_is_refused(vendors: VendorServer, wrong: str) -> None:
    authorization = REFUSED[wrong]()
    async with httpx.AsyncClient() as http:
        with pytest.raises(BadSignature):
            await google_oidc.verify_push(http, authorization, AUDIENCE, ACCOUNT, f"{vendors.base}/google/certs")


def _push(history_id: int) -> bytes:
    data = base64.b64encode(json.dumps({"emailAddress": "salon@example.com", "historyId": history_id}).encode()).decode()
    return json.dumps({"message": {"data": data, "messageId": "p1"}}).encode()


class States:
    """The credentials store's gmail-state row, in memory."""

    def __init__(self, history_id: str | None) -> None:
        self.values = {"historyId": history_id} if history_id else {}

    async def get(self, business_id: str, name: str) -> dict[str, str]:
        return dict(self.values)

    async def set_state(self, business_id: str, name: str, values: dict[str, str]) -> None:
        self.values = values


def _message(mid: str, labels: list[str], results: str, sender: str = "ana@example.com") -> dict[str, Any]:
    headers = [{"name": "From", "value": f"Ana <{sender}>"}, {"name": "Subject", "value": "Programare"}]
    if results:
        headers.insert(0, {"name": "Authentication-Results", "value": results})
    body = base64.urlsafe_b64encode(b"Buna, joi la 10?").decode()
    return {"id": mid, "threadId": "t", "labelIds": labels, "internalDate": "1764000000000",
            "payload": {"mimeType": "text/plain", "headers": headers, "body": {"data": body}}}


async def test_a_forged_huge_history_id_is_never_stored_and_spam_is_skipped(vendors: VendorServer) -> None:
    vendors.state.gmail_history[:] = ["M1", "M2"]
    vendors.state.gmail_history_id = "1205"
    vendors.state.gmail_messages.update(M1=_message("M1", ["INBOX"], "mx.google.com; dmarc=pass header.from=example.com"),
                                        M2=_message("M2", ["SPAM"], ""))
    states = States("1200")
    secrets = {"pushToken": "tok"}
    async with httpx.AsyncClient() as http:
        auth = SimpleNamespace(call=lambda business, send: send("access"))
        deps = SimpleNamespace(http=http, gmail=auth, credentials=states, settings=Settings(GMAIL_API_BASE_URL=f"{vendors.base}/gmail"))
        call = WebhookCall("b", "https://agent.example/webhooks/gmail/b?token=tok", {}, {"token": "tok"}, _push(10**15), secrets)
        received = await gmail._receive(call, deps)
        assert [m.external_id for m in received.messages] == ["M1"], "the spam one is skipped"
        assert received.after is not None
        await received.after()
    assert states.values == {"historyId": "1205"}, "Gmail's own history id, not the pushed one"
    (asked,) = [r for r in vendors.state.requests if r.path.endswith("/history")]
    assert asked.query["startHistoryId"] == "1200"


RESULTS = [
    ("mx.google.com; dkim=pass header.i=@example.com; spf=pass smtp.mailfrom=ana@example.com; dmarc=pass (p=NONE) header.from=example.com", True),
    ("mx.google.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=bounce@mail.example.com; dmarc=none", True),
    ("mx.google.com; dkim=pass header.d=other.example; spf=pass smtp.mailfrom=x@other.example; dmarc=fail header.from=example.com", False),
    ("mx.google.com; spf=pass smtp.mailfrom=ana@example.com; dmarc=none", False),
    ("mx.google.com; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=ana@example.com; dmarc=fail", False),
    ("", False),
]


@pytest.mark.parametrize(("results", "verified"), RESULTS)
def test_the_sender_is_authenticated_by_dmarc_or_aligned_spf_and_dkim(results: str, verified: bool) -> None:
    message = gmail.message_to_inbound("b", _message("M", ["INBOX"], results))
    assert message is not None and message.reply_to["senderVerified"] == ("true" if verified else "false")


def test_a_forged_result_below_gmails_own_is_not_believed() -> None:
    message = _message("M", ["INBOX"], "mx.google.com; dmarc=fail header.from=example.com")
    message["payload"]["headers"].append({"name": "Authentication-Results", "value": "mx.google.com; dmarc=pass"})
    inbound = gmail.message_to_inbound("b", message)
    assert inbound is not None and inbound.reply_to["senderVerified"] == "false"


@pytest.mark.parametrize(("marker", "fact"), [("true", True), ("false", False), (None, True)])
def test_only_an_authenticated_sender_is_the_customers_email_fact(marker: str | None, fact: bool) -> None:
    reply_to = {"to": "ana@example.com"} | ({"senderVerified": marker} if marker else {})
    event = new_event("MessageReceived", business_id="b", user_id="ana@example.com", channel="gmail",
                      payload={"content": "Buna", "externalId": "M", "replyTo": reply_to}).with_seq(1)
    state, _ = FACTS.apply(FACTS.empty("b", "ana@example.com"), event, FoldConfig())
    emails = [(f["value"], f["source"]) for f in state["facts"].get("email", {}).get("current", [])]
    assert emails == ([("ana@example.com", "channel")] if fact else [])


async def test_the_webhook_asks_for_the_oidc_token_once_an_audience_is_set(vendors: VendorServer) -> None:
    settings = Settings(GMAIL_PUSH_AUDIENCE=AUDIENCE, GMAIL_PUSH_SERVICE_ACCOUNT=ACCOUNT, GOOGLE_CERTS_URL=f"{vendors.base}/google/certs")
    without = Settings()
    async with httpx.AsyncClient() as http:
        def call(headers: dict[str, str]) -> WebhookCall:
            return WebhookCall("b", "https://agent.example/webhooks/gmail/b?token=tok", headers, {"token": "tok"}, _push(1),
                               {"pushToken": "tok"})
        await gmail._verify(call({}), SimpleNamespace(http=http, settings=without))  # the URL token alone, as before
        await gmail._verify(call({"authorization": f"Bearer {token()}"}), SimpleNamespace(http=http, settings=settings))
        with pytest.raises(BadSignature):
            await gmail._verify(call({}), SimpleNamespace(http=http, settings=settings))
        with pytest.raises(BadSignature):
            await gmail._verify(call({"authorization": f"Bearer {token(email='x@evil.example')}"}), SimpleNamespace(http=http, settings=settings))
