"""Open widget sockets by conversation, so replies reach the customer who is connected."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket


class SocketHub:
    """Each reply frame goes once to each socket: a live send and the connect-time catch-up can
    both carry the same reply while a customer (re)connects."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocket]] = {}
        self._sent: dict[WebSocket, set[str]] = {}  # eventIds sent on each open socket
        self._lock = asyncio.Lock()

    async def add(self, stream: str, ws: WebSocket) -> None:
        async with self._lock:
            self._sockets.setdefault(stream, set()).add(ws)
            self._sent.setdefault(ws, set())

    async def remove(self, stream: str, ws: WebSocket) -> None:
        async with self._lock:
            sockets = self._sockets.get(stream, set())
            sockets.discard(ws)
            self._sent.pop(ws, None)
            if not sockets:
                self._sockets.pop(stream, None)

    async def close_all(self, stream: str, code: int, reason: str) -> None:
        """Close every socket of `stream` held here (a revoked visitor)."""
        for ws in list(self._sockets.get(stream, set())):
            try:
                await ws.close(code=code, reason=reason)
            except Exception:  # noqa: BLE001 - already closing
                pass

    def connected(self, stream: str) -> bool:
        return bool(self._sockets.get(stream))

    async def send_once(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        """Send `frame` on `ws` unless this socket already got its eventId."""
        sent = self._sent.setdefault(ws, set())
        if frame.get("eventId") in sent:
            return
        sent.add(frame.get("eventId"))  # before the await: a concurrent send of it sees it taken
        await ws.send_json(frame)

    async def send_live(self, stream: str, frame: dict[str, Any]) -> None:
        """Send a signal (typing, streamed text) to the conversation's sockets here, if any: no
        record of it is kept and a failure is not the hub's concern (the socket's loop closes it)."""
        for ws in list(self._sockets.get(stream, ())):
            try:
                await ws.send_json(frame)
            except Exception:  # noqa: BLE001 - a lost signal is harmless
                pass

    async def send(self, stream: str, frame: dict[str, Any]) -> bool:
        """Send to every socket of the conversation; True if at least one took it."""
        delivered = False
        for ws in list(self._sockets.get(stream, ())):
            try:
                await self.send_once(ws, frame)
                delivered = True
            except Exception:
                await self.remove(stream, ws)
        return delivered
