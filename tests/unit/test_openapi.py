"""`/openapi.json`: every route the gateway serves is in the document, with the body model its
handler validates with and how its caller authenticates; the document is valid OpenAPI 3.1;
and the handlers do refuse what their documented schema refuses and take its examples."""

from __future__ import annotations

from typing import Any, cast

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from agentstream.adapters.http.common import Deps
from agentstream.adapters.http.gateway import create_app
from agentstream.adapters.http.openapi import REF, operations
from tests.unit.gateway_on_moto import MotoGateway, moto_gateway  # noqa: F401 - the fixture

APP = create_app(cast(Deps, None))  # routes only: nothing below reaches a store
PUBLIC = {"/", "/healthz", "/openapi.json", "/widget.js", "/ws/{businessId}", "/inbox", "/inbox/sign-in",
          "/v1/widget/{businessId}/visitors",
          "/calendar/{businessId}/{feedToken}.ics"}  # a capability URL: its token is in the path


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    answer = TestClient(APP).get("/openapi.json")
    assert answer.status_code == 200
    return cast(dict[str, Any], answer.json())


def test_the_document_is_valid_openapi_3_1(served: dict[str, Any]) -> None:
    assert served["openapi"].startswith("3.1")
    validate(served)


def test_every_route_served_is_in_the_document_with_the_schemas_its_handler_validates_with(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]
    found = operations(APP.routes)
    assert len(found) >= 30 and {"/v1/messages", "/webhooks/twilio/{businessId}", "/inbox/sign-in"} <= {p for p, _, _ in found}
    for path, method, op in found:
        assert op is not None, f"{method.upper()} {path}: describe its handler with @operation(...)"
        entry = served["paths"][path][method]
        if op.body is not None:
            ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == REF.format(model=op.body.__name__)
            own = op.body.model_json_schema(ref_template=REF)
            own.pop("$defs", None)
            assert schemas[op.body.__name__] == own, f"{method.upper()} {path}: schema is not its model's"
        else:
            assert "application/json" not in entry.get("requestBody", {}).get("content", {})
        for answer in entry["responses"].values():
            for media in answer.get("content", {}).values():
                assert media["schema"]["$ref"].rpartition("/")[2] in schemas


def test_every_route_but_the_public_ones_says_how_its_caller_authenticates(served: dict[str, Any]) -> None:
    schemes = served["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer" and schemes["inboxSession"]["in"] == "cookie"
    assert schemes["webhook-twilio"]["name"] == "X-Twilio-Signature"
    for path, methods in served["paths"].items():
        for method, entry in methods.items():
            if path in PUBLIC:
                continue
            assert entry.get("security"), f"{method.upper()} {path} names no security scheme"
            (scheme,) = entry["security"][0]
            assert scheme in schemes
            if path.startswith("/v1/") and "/widget/" not in path:
                assert scheme == "apiKey", path


def _example(served: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = served["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return cast(dict[str, Any], served["components"]["schemas"][ref.rpartition("/")[2]]["examples"][0])


async def test_the_body_routes_take_their_documented_examples_and_refuse_what_their_schemas_refuse(
        moto_gateway: MotoGateway, served: dict[str, Any]) -> None:
    gw = moto_gateway
    auth = {"Authorization": f"Bearer {gw.api_key}"}
    message = _example(served, "/v1/messages", "post") | {"businessId": gw.business}
    facts = "/v1/businesses/{businessId}/users/{userId}/facts/{kind}"
    cases = [("POST", "/v1/messages", message, {"text": "x"}),
             ("PUT", facts.format(businessId=gw.business, userId=message["userId"], kind="phone"),
              _example(served, facts, "put"), {"value": "+40722000111", "unexpected": 1})]
    for method, url, example, refused in cases:
        stream = await gw.d.store.read(f"{gw.business}#{message['userId']}")
        for wrong in ([example], refused):
            answer = await gw.http.request(method, url, json=wrong, headers=auth)
            assert answer.status_code == 400 and "error" in answer.json(), (url, answer.text)
        assert await gw.d.store.read(f"{gw.business}#{message['userId']}") == stream
        taken = await gw.http.request(method, url, json=example, headers=auth)
        assert taken.status_code == 202, taken.text
