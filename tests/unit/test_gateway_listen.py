"""A gateway whose port is taken stops with a plain error, not with uvicorn's exit code 3, which
is the code of "upgrade needed" (`up` would not restart it, and would tell the owner to upgrade)."""

from __future__ import annotations

import socket

import pytest
import uvicorn

from agentstream.wiring import CannotListen, serve


async def app(scope: dict, receive: object, send: object) -> None:
    """No request reaches it."""


async def test_a_taken_port_is_a_plain_error_not_the_upgrade_code() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
        with pytest.raises(CannotListen, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve(server)
