"""A Faust agent that acks each record of the events topic and does nothing else: the worker's
own app (`streams.worker.faust_app`, its group from WORKER_GROUP) with an empty agent. `bench
worker` runs it on the same topic as the worker to show the ceiling Faust's per-record dispatch
puts on any worker built on it: `python -m agentstream.bench.faust_noop`."""

from __future__ import annotations

import asyncio
from typing import Any

from agentstream import loops
from agentstream.settings import Settings
from agentstream.streams.worker import events_topic, faust_app


async def run(settings: Settings) -> None:
    app = faust_app(settings)

    @app.agent(events_topic(app, settings), name="noop")
    async def noop(stream: Any) -> None:
        async for record in stream.noack().events():
            record.ack()

    await app.start()
    await asyncio.Event().wait()  # stopped by the bench (SIGTERM)


def main() -> None:
    settings = Settings()
    loops.run(run(settings), settings.event_loop)


if __name__ == "__main__":
    main()
