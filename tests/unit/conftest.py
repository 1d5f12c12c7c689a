"""Fast store tests: moto's DynamoDB served in this process (no Kafka, no ministack).

moto's in-process `mock_aws` does not patch aiobotocore's client (a TypeError in aiobotocore's
endpoint), so moto[server]'s ThreadedMotoServer listens on a free port and the project's own
aiobotocore client (`dynamodb_client`) is pointed at it, as it is at ministack or AWS.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest
from pydantic import AliasChoices

from agentstream.adapters.dynamo.client import dynamodb_client
from agentstream.adapters.dynamo.tables import ensure_tables
from agentstream.settings import Settings, Tables


def start_moto() -> Any:
    """moto's ThreadedMotoServer on a free port, answering one request at a time.

    moto's DynamoDB checks a write's condition and then writes without a lock, so two concurrent
    conditional puts of one key can both succeed (20 concurrent appenders got the same seq two
    or three times). DynamoDB and ministack never allow that; serialising requests restores it.
    moto is imported here, not at collection: it takes seconds, and most unit tests need none.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            lock = threading.Lock()
            app = DomainDispatcherApplication(create_backend_app)

            def serial(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(self._ip_address, self._port, serial, threaded=True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a log line per request otherwise
    server = SerialMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's DynamoDB, once per session, on a free port of 127.0.0.1."""
    server = start_moto()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def moto_settings(moto_endpoint: str) -> Settings:
    """Settings on the moto server (the tables are the session's; tests keep apart by business id)."""
    tag = uuid.uuid4().hex[:8]
    names: dict[str, str] = {}
    for spec in Tables.model_fields.values():
        alias = spec.validation_alias
        names[str(alias.choices[0] if isinstance(alias, AliasChoices) else alias)] = f"{tag}-{spec.default}"
    return Settings(dynamodb_endpoint_url=moto_endpoint, aws_region="us-east-1", tables=Tables(**names))


@pytest.fixture(scope="session")
async def moto_ddb(moto_settings: Settings) -> AsyncIterator[Any]:
    """One aiobotocore DynamoDB client on moto, with every table, for the session (a client
    takes about half a second to make, a table set about a second)."""
    async with dynamodb_client(moto_settings) as ddb:
        await ensure_tables(ddb, moto_settings.tables)
        yield ddb


@pytest.fixture
def biz() -> str:
    """A business id of this test's own: its streams, idempotency keys and items are its own."""
    return f"b{uuid.uuid4().hex[:8]}"
