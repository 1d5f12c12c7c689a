"""Shared pieces of the HTTP gateway: dependencies, body limits and error answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.credentials import CredentialStore
from agentstream.adapters.http.errors import HttpError
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.ingest import Ingestor
from agentstream.adapters.dynamo.bookings import BookingsTable
from agentstream.adapters.http.bookings_service import Bookings
from agentstream.adapters.http.owner_service import OwnerService
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.adapters.signals import Signals
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.settings import Settings

if TYPE_CHECKING:
    from agentstream.adapters.channels.gmail_auth import GmailAuth
    from agentstream.adapters.http.rate_limits import GatewayLimits
    from agentstream.adapters.http.visitors import VisitorRecords


class AnalyticsFigures(Protocol):
    """The analytics consumer's figures, as GET /v1/analytics serves them."""

    running: bool

    def snapshot(self, business_id: str) -> dict[str, Any]: ...


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}".lower()


def origin_allowed(d: Deps, connection: Any, info: dict[str, Any] | None) -> bool:
    """Whether a browser's Origin may use this business's visitor routes and socket: none sent (not
    a browser's cross-site call), the gateway's own, or one of the business's
    `settings.allowedOrigins` (exact, or `scheme://host:*` for any port)."""
    origin = connection.headers.get("origin")
    if not origin:
        return True
    origin = origin.lower()
    if origin in (_origin_of(d.settings.public_base_url), _origin_of(str(connection.url))):
        return True
    allowed = ((info or {}).get("settings") or {}).get("allowedOrigins") or []
    return any(isinstance(a, str) and (origin == a.lower() or (a.endswith(":*") and origin.startswith(a[:-1].lower())
                                                                and origin[len(a) - 1:].isdigit()))
               for a in allowed)


def client_address(request: Any) -> str:
    """The caller's address (a proxy's X-Forwarded-For is honoured by uvicorn for trusted proxies)."""
    return request.client.host if request.client else "unknown"


@dataclass
class Deps:
    """What the gateway's handlers need; built once by the composition root."""

    settings: Settings
    ddb: Any
    store: EventStore
    ingestor: Ingestor
    directory: BusinessDirectory
    projections: ProjectionStore
    credentials: CredentialStore
    hub: SocketHub
    http: Any = None
    analytics: AnalyticsFigures | None = None  # None: GET /v1/analytics answers 503
    gmail: GmailAuth | None = None  # Gmail API calls with a refreshed access token
    explainer: Any = None  # streams.explain.Explainer (None: the explain route answers 503)
    heads: SettledHeads | None = None  # the widget conversations' heads at rest (the ingestor's guesses)
    limits: GatewayLimits | None = None  # None: no rate limits (tests of other things)
    visitors: VisitorRecords | None = None  # None: widget tokens without records (stateless)
    media: Any = None  # adapters.media_bucket.MediaBucket (None: the inbox's files answer 503)
    signals: Signals | None = None  # agent.signals.v1 (None: a revocation closes this gateway's sockets only)
    owner: OwnerService = field(init=False)  # the owner's commands and queries (the API and the inbox)
    bookings: Bookings = field(init=False)  # the appointment commands and the bookings list

    def __post_init__(self) -> None:
        self.owner = OwnerService(self.store, self.projections, self.directory)
        self.bookings = Bookings(self.store, self.directory, BookingsTable(self.ddb, self.settings.tables))


def deps(request: Request) -> Deps:
    return request.app.state.deps


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (413) before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"body over {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, f"body over {limit} bytes")
    return body


def decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "body is not valid UTF-8") from None


async def known_business(d: Deps, business_id: str) -> dict[str, Any]:
    info = await d.directory.info(business_id)
    if info is None:
        raise HttpError(404, f"unknown business {business_id!r}")
    return info


UNAUTHORIZED = "missing or invalid API key (Authorization: Bearer <businessId>.<secret>)"


def bearer(request: Request, refusal: str = UNAUTHORIZED) -> str:
    """The Authorization header's bearer token; 401 with `refusal` without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, refusal)
    return token.strip()


async def authenticate(d: Deps, request: Request) -> str:
    """The businessId the request's API key names, checked before the body or anything else is
    read. A missing or wrong key and an unknown business get one and the same 401."""
    business_id = await business_of_key(d, bearer(request))
    if business_id is None:
        raise HttpError(401, UNAUTHORIZED)
    return business_id


async def business_of_key(d: Deps, api_key: str) -> str | None:
    """The known business an API key `<businessId>.<secret>` is the key of, else None."""
    business_id = await d.credentials.api_key_business(api_key)
    if business_id is None or await d.directory.info(business_id) is None:
        return None
    return business_id


async def require_api_key(d: Deps, request: Request, business_id: str) -> None:
    """401 (as for a wrong key) unless the request's API key is `business_id`'s."""
    if await authenticate(d, request) != business_id:
        raise HttpError(401, UNAUTHORIZED)
