"""`agentstream delivery` that dies (os._exit, as a kill -9 would: no commit, no clean-up) at a
fixed point of its first external send: `python -m tests.integration.delivery_killer POINT` with
POINT before_send | after_send (the vendor accepted it, nothing written yet) | after_mark (its
claim marked sent, ReplyDelivered not yet written) | after_record (ReplyDelivered written, the
offset not yet committed)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentstream import wiring
from agentstream.settings import Settings
from agentstream.streams import delivery

KILLED = 137


def die(point: str) -> None:
    print(f"killed at {point}", flush=True)
    os._exit(KILLED)


def main(point: str) -> None:
    make_sender = wiring.external_sender

    def external_sender(deps: Any, settings: Settings) -> Any:
        send = make_sender(deps, settings)

        async def dying_send(reply: Any) -> str | None:
            if point == "before_send":
                die(point)
            sent = await send(reply)
            if point == "after_send":
                die(point)
            return sent

        return dying_send

    record = delivery.DeliveryLog.record

    async def dying_record(self: Any, reply: Any, kind: str, payload: dict[str, Any]) -> None:
        await record(self, reply, kind, payload)
        if point == "after_record":
            die(point)

    mark_sent = delivery.DeliveryLog.mark_sent

    async def dying_mark(self: Any, reply: Any, external_id: str | None) -> None:
        await mark_sent(self, reply, external_id)
        if point == "after_mark":
            die(point)

    wiring.external_sender = external_sender  # type: ignore[assignment]
    delivery.DeliveryLog.mark_sent = dying_mark  # type: ignore[method-assign]
    delivery.DeliveryLog.record = dying_record  # type: ignore[method-assign]
    asyncio.run(wiring.run_delivery(Settings(), asyncio.Event()))


if __name__ == "__main__":
    main(sys.argv[1])
