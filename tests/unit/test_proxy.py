"""The round-robin proxy `up --scale gateway=N` puts in front of the gateways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentstream.local.services import free_port
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
    proxy = RoundRobin([servers[0][1], ("localhost", dead), ("127.0.0.1", servers[1][1])])
    front = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)  # listening once this returns
    yield front.sockets[0].getsockname()[1], [s for s, _ in servers], [p for _, p in servers]
    front.close()
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
