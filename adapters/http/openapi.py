"""The HTTP API as an OpenAPI 3.1 document, generated from the gateway's own routes.

Each handler carries its `Operation` (set by `@operation(...)`): the body model it validates
with (adapters/http/api_models.py), its answers and its authentication. `document(routes)` walks
the routes the app serves, so a route is described exactly when it is served; the gateway
answers the result at `GET /openapi.json`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route, WebSocketRoute

from agentstream.adapters.http.api_models import Error

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

# how each caller proves who it is
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "<businessId>.<secret>",
               "description": "The business's API key (`agentstream credentials set B rest`). A missing or wrong key "
                              "and an unknown business get one and the same 401; a path naming another business too."},
    "widgetToken": {"type": "http", "scheme": "bearer", "bearerFormat": "widget token",
                    "description": "A visitor's token from POST /v1/widget/{businessId}/visitors; a refresh presents "
                                   "the old one, also when it expired a short while ago."},
    "inboxSession": {"type": "apiKey", "in": "cookie", "name": "agentstream_inbox",
                     "description": "The inbox's signed session cookie (sign in with the API key and a display name); "
                                    "every form posted also carries the session's CSRF token."},
}
# a vendor's webhook is checked with the business's stored secret for that vendor
WEBHOOK_HEADERS = {"twilio": "X-Twilio-Signature", "meta": "X-Hub-Signature-256", "gmail": "Authorization",
                   "telegram": "X-Telegram-Bot-Api-Secret-Token"}


@dataclass(frozen=True)
class Operation:
    """What the document says of one handler."""

    summary: str
    body: type[BaseModel] | None = None  # the model the handler validates its body with
    form: type[BaseModel] | None = None  # an urlencoded form's fields (the inbox)
    answers: dict[int, type[BaseModel] | str] = field(default_factory=dict)  # status → model or a description
    security: str | None = None  # a key of SECURITY_SCHEMES, or webhook-<provider>
    html: bool = False  # answers are pages for people
    tag: str = "api"
    description: str = ""


def operation(summary: str, **kwargs: Any) -> Callable[[F], F]:
    """Describe a handler in /openapi.json (wrappers copy it with functools.wraps)."""

    def describe(handler: F) -> F:
        handler.__openapi__ = Operation(summary, **kwargs)  # type: ignore[attr-defined]
        return handler

    return describe


def described(endpoint: Any) -> Operation | None:
    return getattr(endpoint, "__openapi__", None)


def _schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in sorted(set(models), key=lambda m: m.__name__)],
                                ref_template=REF)
    return top.get("$defs", {})


def _answer(status: int, what: type[BaseModel] | str, html: bool) -> dict[str, Any]:
    if isinstance(what, str):
        return {"description": what}
    media = "text/html" if html and what is Error else "application/json"
    return {"description": (what.__doc__ or what.__name__).strip().splitlines()[0],
            "content": {media: {"schema": {"$ref": REF.format(model=what.__name__)}}}}


def _operation(op: Operation, path: str, method: str) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": f"{method}{path}"}
    if op.description:
        out["description"] = op.description
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in _PARAM.findall(path)]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=op.body.__name__)}}}}
    elif op.form is not None:
        out["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"$ref": REF.format(model=op.form.__name__)}}}}
    answers = dict(op.answers) or {200: "OK"}
    if op.body is not None or op.form is not None:
        answers.setdefault(400, Error)
        answers.setdefault(413, Error)
    if op.security:
        answers.setdefault(403 if op.security.startswith("webhook-") else 401, Error)
        out["security"] = [{op.security: []}]
    out["responses"] = {str(s): _answer(s, what, op.html) for s, what in sorted(answers.items())}
    return out


def _route_methods(route: BaseRoute) -> list[tuple[str, str, Operation | None]]:
    if isinstance(route, WebSocketRoute):
        return [(route.path, "get", described(route.endpoint))]
    if isinstance(route, Route):
        methods = sorted(m.lower() for m in (route.methods or ()) if m not in ("HEAD", "OPTIONS"))
        return [(route.path, m, described(route.endpoint)) for m in methods]
    return []


def operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Operation | None]]:
    """(path, method, its Operation or None) of every route served."""
    return [found for route in routes for found in _route_methods(route)]


def document(routes: Iterable[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes; an undescribed route is listed without detail."""
    paths: dict[str, dict[str, Any]] = {}
    models: list[type[BaseModel]] = [Error]
    schemes = dict(SECURITY_SCHEMES)
    for path, method, op in operations(routes):
        op = op or Operation("(not described)")
        paths.setdefault(path, {})[method] = _operation(op, path, method)
        models += [m for m in (op.body, op.form, *op.answers.values()) if isinstance(m, type)]
        if op.security and op.security.startswith("webhook-"):
            provider = op.security.partition("-")[2]
            schemes[op.security] = {"type": "apiKey", "in": "header", "name": WEBHOOK_HEADERS.get(provider, "Authorization"),
                                    "description": f"{provider}'s signature, checked with the business's stored {provider} "
                                                   "secrets before the body is parsed; a failed check, missing secrets and an "
                                                   "unknown business get the same 403."}
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentstream gateway", "version": version,
                 "description": "The HTTP API of the gateway: the widget's visitors and socket, the business API (its key), "
                                "the vendors' webhooks and the owner's inbox. Every refusal is `{\"error\": …}`."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _schemas(models), "securitySchemes": dict(sorted(schemes.items()))},
    }
