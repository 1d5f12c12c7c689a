"""The inbox's sign-in session: a cookie signed with itsdangerous by a key derived from the
gateway's secret key (the previous keys still verify), HttpOnly, SameSite=Strict, scoped to /inbox.

It holds a session id, the business, the person's display name, a per-session CSRF token (every
POST form carries it; it is compared in constant time) and a fingerprint of the business's API
key hash. Signing out records the session id as ended (an item of the inbox views table, gone
after the cookie's lifetime), and rotating the API key changes the fingerprint: either way the
cookie stops working at once on every gateway, and the session's live streams end (at once on
this gateway, within a poll on the others). Before sign-in the cookie holds only a CSRF token,
so the sign-in form is protected too.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from agentstream.adapters.dynamo.credentials import REREAD_AFTER_S
from agentstream.adapters.dynamo.client import to_item
from agentstream.adapters.http.common import Deps
from agentstream.adapters.channels.rest import PROVIDER as REST
from agentstream.keys import keyring

COOKIE = "agentstream_inbox"
MAX_AGE_S = 12 * 3600
_SALT = "agentstream.inbox.session"
_PURPOSE = "agentstream/inbox-cookie"
SIGNED_OUT = "signed-out#"  # viewKey prefix of an ended session's record
_live: dict[str, set[asyncio.Event]] = {}  # session id -> the events of its live streams on this gateway


@dataclass(frozen=True)
class InboxSession:
    csrf: str
    business_id: str | None = None  # None: not signed in
    name: str | None = None
    key_print: str | None = None
    session_id: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.business_id is not None


def _serializer(d: Deps) -> URLSafeTimedSerializer:
    """Signs with the current key's cookie key, verifies with every key's (itsdangerous: the last signs)."""
    return URLSafeTimedSerializer(list(reversed(keyring(d.settings).derived(_PURPOSE))), salt=_SALT)


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
    fields = [data.get(k) for k in ("b", "n", "k", "s")]
    if all(isinstance(f, str) for f in fields):
        return InboxSession(data["c"], *fields)
    return InboxSession(data["c"])


def write_session(d: Deps, response: Response, session: InboxSession) -> None:
    data = {"c": session.csrf}
    if session.signed_in:
        data |= {"b": session.business_id, "n": session.name, "k": session.key_print,
                 "s": session.session_id or secrets.token_urlsafe(16)}
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
    """Signed in, not signed out, the business still exists and its API key is the one signed in
    with (read again when the cached read is over a second old: a rotation counts at once)."""
    if not session.signed_in or not session.session_id or await d.directory.info(session.business_id or "") is None:
        return False
    business_id = session.business_id or ""
    fresh = await d.credentials.get(business_id, REST.name, time.monotonic() - REREAD_AFTER_S)
    current = fresh.get("apiKeyHash", "")[:16]
    if not current or not hmac.compare_digest(current, session.key_print or ""):
        return False
    ended = await d.ddb.get_item(TableName=d.settings.tables.inbox_views, ConsistentRead=True,
                                 Key=to_item({"businessId": business_id, "viewKey": SIGNED_OUT + session.session_id}))
    return "Item" not in ended


async def end_session(d: Deps, session: InboxSession) -> None:
    """Sign out: the session's cookie stops working on every gateway, its live streams end."""
    if not session.signed_in or not session.session_id:
        return
    item = {"businessId": session.business_id, "viewKey": SIGNED_OUT + session.session_id,
            "expiresAt": int(time.time()) + MAX_AGE_S + 60}
    await d.ddb.put_item(TableName=d.settings.tables.inbox_views, Item=to_item(item))
    for ended in _live.get(session.session_id, set()):
        ended.set()


@contextmanager
def live(session: InboxSession) -> Iterator[asyncio.Event]:
    """An event set when this session signs out on this gateway (its live stream ends at once)."""
    ended = asyncio.Event()
    streams = _live.setdefault(session.session_id or "", set())
    streams.add(ended)
    try:
        yield ended
    finally:
        streams.discard(ended)
        if not streams:
            _live.pop(session.session_id or "", None)
