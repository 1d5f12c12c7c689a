"""A round-robin TCP proxy: one public port in front of several gateways (`up --scale gateway=N`).

Each connection (an HTTP request stream or a WebSocket) goes whole to the next gateway in turn;
a gateway that refuses the connection (stopped, restarting) is skipped. It works on bytes, so
webhooks, the REST API, the widget page and its socket all pass unchanged. Run it as
`python -m agentstream.local.proxy PORT BACKEND_PORT...`.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from collections.abc import Sequence

CHUNK = 64 * 1024


class RoundRobin:
    """Listens on `port` and hands each connection to the next backend that accepts it."""

    def __init__(self, backends: Sequence[int], host: str = "127.0.0.1") -> None:
        self._backends = list(backends)
        self._host = host
        self._turn = itertools.cycle(range(len(self._backends)))

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self._backends)):
            port = self._backends[next(self._turn)]
            try:
                return await asyncio.open_connection(self._host, port)
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

    async def serve(self, port: int, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self.handle, self._host, port, reuse_address=True)
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


async def _main(port: int, backends: list[int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await RoundRobin(backends).serve(port, stop)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not all(a.isdigit() for a in args):
        print("usage: python -m agentstream.local.proxy PORT BACKEND_PORT...", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_main(int(args[0]), [int(a) for a in args[1:]]))


if __name__ == "__main__":
    main()
