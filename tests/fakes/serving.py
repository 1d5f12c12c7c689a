"""A Starlette app served by uvicorn in a thread on a free local port: the fakes' common part.
Use it as `with Fake(...) as fake:`; `base` is its address."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from agentstream.local.services import free_port


class LocalServer:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)
