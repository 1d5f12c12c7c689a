"""The socket hub sends each reply frame once per socket, however many paths carry it."""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream.adapters.http.ws_hub import SocketHub


class Socket:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send_json(self, frame: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # a real send yields: a concurrent send of the same frame runs meanwhile
        self.frames.append(frame)


async def test_a_reply_carried_live_and_by_the_catch_up_reaches_each_socket_once() -> None:
    hub, old, new = SocketHub(), Socket(), Socket()
    await hub.add("b#u", old)  # type: ignore[arg-type]
    await hub.add("b#u", new)  # type: ignore[arg-type]
    frame = {"type": "reply", "eventId": "r1", "text": "ok"}
    await asyncio.gather(hub.send("b#u", frame), hub.send_once(new, frame))  # type: ignore[arg-type]
    await hub.send("b#u", {"type": "reply", "eventId": "r2", "text": "next"})
    assert [f["eventId"] for f in old.frames] == ["r1", "r2"]
    assert [f["eventId"] for f in new.frames] == ["r1", "r2"]


async def test_a_socket_that_reconnects_gets_the_reply_again() -> None:
    hub, first, second = SocketHub(), Socket(), Socket()
    await hub.add("b#u", first)  # type: ignore[arg-type]
    await hub.send("b#u", {"type": "reply", "eventId": "r1"})
    await hub.remove("b#u", first)  # type: ignore[arg-type]
    await hub.add("b#u", second)  # type: ignore[arg-type]
    await hub.send_once(second, {"type": "reply", "eventId": "r1"})  # type: ignore[arg-type]
    assert len(first.frames) == len(second.frames) == 1
