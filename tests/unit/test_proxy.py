"""The round-robin proxy `up --scale gateway=N` puts in front of the gateways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentstream.adapters.local_services import free_port
from agentstream.local.proxy import RoundRobin, backend


async def _backend(name: bytes) -> tuple[asyncio.Server, int]:
    """A server that answers each connection with its name and what it was sent."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name + b":" + await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line + b"\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[int, list[asyncio.Server], list[int]]]:
    servers = [await _backend(n) for n in (b"a", b"b")]
    dead = free_port()  # nothing listens here: a gateway being restarted
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(RoundRobin([servers[0][1], ("localhost", dead), ("127.0.0.1", servers[1][1])]).serve(port, stop))
    for _ in range(100):
        try:
            (await asyncio.open_connection("127.0.0.1", port))[1].close()  # listening
            break
        except OSError:
            await asyncio.sleep(0.02)
    yield port, [s for s, _ in servers], [p for _, p in servers]
    stop.set()
    await task
    for s, _ in servers:
        s.close()


async def test_connections_go_to_each_live_backend_in_turn_with_their_bytes(proxied) -> None:  # type: ignore[no-untyped-def]
    port, _, _ = proxied
    answers = [await _ask(port, f"hello {i}".encode()) for i in range(4)]
    names = [a.split(b":")[0] for a in answers]
    assert sorted(names[:2]) == [b"a", b"b"] and names[:2] == names[2:], "round robin, the dead one skipped"
    assert [a.split(b":", 1)[1] for a in answers] == [f"hello {i}\n".encode() for i in range(4)]


async def test_no_backend_listening_gives_503(proxied) -> None:  # type: ignore[no-untyped-def]
    port, servers, _ = proxied
    for s in servers:
        s.close()
        await s.wait_closed()
    assert (await _ask(port, b"x")).startswith(b"HTTP/1.1 503")


def test_backends_are_ports_or_host_and_port() -> None:
    assert [backend(b) for b in ("8081", "gateway:8080")] == [("127.0.0.1", 8081), ("gateway", 8080)]
    with pytest.raises(ValueError, match="not a port"):
        backend("gateway")
