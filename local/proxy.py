"""A round-robin TCP proxy: one public port in front of several gateways (`up --scale gateway=N`).

Each connection (an HTTP request stream or a WebSocket) goes whole to the next gateway in turn;
a gateway that refuses the connection (stopped, restarting) is skipped. It works on bytes, so
webhooks, the REST API, the widget page and its socket all pass unchanged. Run it as
`python -m agentstream.local.proxy PORT BACKEND...`, a backend being a port on this machine or
HOST:PORT; a host name stands for every address it resolves to, looked up again for each
connection (docker compose's `gateway` name resolves to each of its replicas).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import Sequence

CHUNK = 64 * 1024


Backend = tuple[str, int]


def backend(text: str) -> Backend:
    """`8081` or `gateway:8080` → (host, port)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not a port or HOST:PORT: {text!r}")
    return host or "127.0.0.1", int(port)


class RoundRobin:
    """Listens on `port` and hands each connection to the next backend address that accepts it."""

    def __init__(self, backends: Sequence[int | Backend]) -> None:
        self._backends = [("127.0.0.1", b) if isinstance(b, int) else b for b in backends]
        self._turn = itertools.count()

    async def _addresses(self) -> list[Backend]:
        loop, found = asyncio.get_running_loop(), []
        for host, port in self._backends:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                continue
            found += sorted({(info[4][0], port) for info in infos})
        return found

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        addresses = await self._addresses()
        for _ in range(len(addresses)):  # each try takes a turn, so the live ones alternate strictly
            host, port = addresses[next(self._turn) % len(addresses)]
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                continue
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = await self._open()
        if backend is None:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await _close(writer)
            return
        up_reader, up_writer = backend
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def serve(self, port: int, stop: asyncio.Event, host: str = "127.0.0.1") -> None:
        server = await asyncio.start_server(self.handle, host, port, reuse_address=True)
        async with server:
            await stop.wait()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until end of file, then close the other side (HTTP and WebSocket never half-close)."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        await _close(dst)


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def _main(port: int, backends: list[Backend], host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await RoundRobin(backends).serve(port, stop, host)


def main(argv: Sequence[str] | None = None) -> None:
    """PORT BACKEND...; PROXY_HOST is the address to listen on (default 127.0.0.1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) < 2 or not args[0].isdigit():
            raise ValueError("usage: python -m agentstream.local.proxy PORT BACKEND... (a port or HOST:PORT)")
        backends = [backend(a) for a in args[1:]]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    asyncio.run(_main(int(args[0]), backends, os.environ.get("PROXY_HOST", "127.0.0.1")))


if __name__ == "__main__":
    main()
