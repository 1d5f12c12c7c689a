"""Open widget sockets by conversation, so replies reach the customer who is connected."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket


class SocketHub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocket]] = {}
        self._lock = asyncio.Lock()

    async def add(self, stream: str, ws: WebSocket) -> None:
        async with self._lock:
            self._sockets.setdefault(stream, set()).add(ws)

    async def remove(self, stream: str, ws: WebSocket) -> None:
        async with self._lock:
            sockets = self._sockets.get(stream, set())
            sockets.discard(ws)
            if not sockets:
                self._sockets.pop(stream, None)

    def connected(self, stream: str) -> bool:
        return bool(self._sockets.get(stream))

    async def send(self, stream: str, frame: dict[str, Any]) -> bool:
        """Send to every socket of the conversation; True if at least one took it."""
        delivered = False
        for ws in list(self._sockets.get(stream, ())):
            try:
                await ws.send_json(frame)
                delivered = True
            except Exception:
                await self.remove(stream, ws)
        return delivered
