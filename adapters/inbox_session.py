"""The inbox's sign-in session: a cookie signed with itsdangerous by the gateway's secret key
(AGENTSTREAM_SECRET_KEY), HttpOnly, SameSite=Strict, scoped to /inbox.

It holds the business, the person's display name, a per-session CSRF token (every POST form
carries it; it is compared in constant time) and a fingerprint of the business's API key hash,
so rotating the key signs every inbox session out. Before sign-in the cookie holds only a CSRF
token, so the sign-in form is protected too.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from agentstream.adapters.http_common import Deps
from agentstream.adapters.channels.rest import PROVIDER as REST

COOKIE = "agentstream_inbox"
MAX_AGE_S = 12 * 3600
_SALT = "agentstream.inbox.session"


@dataclass(frozen=True)
class InboxSession:
    csrf: str
    business_id: str | None = None  # None: not signed in
    name: str | None = None
    key_print: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.business_id is not None


def _serializer(d: Deps) -> URLSafeTimedSerializer:
    if not d.settings.credentials_key:
        raise RuntimeError("AGENTSTREAM_SECRET_KEY is not set")
    return URLSafeTimedSerializer(d.settings.credentials_key, salt=_SALT)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def read_session(d: Deps, request: Request) -> InboxSession | None:
    """The cookie's session if its signature holds and it is not older than MAX_AGE_S."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(d).loads(raw, max_age=MAX_AGE_S)
    except BadData:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    fields = [data.get(k) for k in ("b", "n", "k")]
    if all(isinstance(f, str) for f in fields):
        return InboxSession(data["c"], *fields)
    return InboxSession(data["c"])


def write_session(d: Deps, response: Response, session: InboxSession) -> None:
    data = {"c": session.csrf}
    if session.signed_in:
        data |= {"b": session.business_id, "n": session.name, "k": session.key_print}
    response.set_cookie(COOKIE, _serializer(d).dumps(data), max_age=MAX_AGE_S, path="/inbox", httponly=True,
                        samesite="strict", secure=d.settings.public_base_url.startswith("https://"))


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/inbox", httponly=True, samesite="strict")


def csrf_ok(session: InboxSession | None, token: str | None) -> bool:
    return bool(session and token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())


async def key_print(d: Deps, business_id: str) -> str:
    """A short fingerprint of the business's stored API key hash ('' when it has none)."""
    return (await d.credentials.get(business_id, REST.name)).get("apiKeyHash", "")[:16]


async def still_valid(d: Deps, session: InboxSession) -> bool:
    """Signed in, the business still exists and its API key is the one signed in with."""
    if not session.signed_in or await d.directory.info(session.business_id or "") is None:
        return False
    current = await key_print(d, session.business_id or "")
    return bool(current) and hmac.compare_digest(current, session.key_print or "")
