"""`agentstream dlq list|retry`: the events the worker skipped (it failed every attempt), and
bringing one back after a fix."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from agentstream.configure import one_shot

if TYPE_CHECKING:
    from agentstream.settings import Settings
    from agentstream.streams.dead_letters import Retried, Skipped

dlq_app = typer.Typer(help="Events skipped after failing every attempt: list them, retry them after a fix.",
                      no_args_is_help=True)


async def list_skipped(settings: Settings, business: str | None) -> list[Skipped]:
    from agentstream.wiring import run_list_skipped  # the CLI starts without the processes' imports

    return await run_list_skipped(settings, business)


async def retry_skipped(settings: Settings, business: str | None, event_id: str | None, wait_s: float = 0.0) -> list[Retried]:
    """Revoke the skips (one event's, or all in scope): the worker re-folds each customer's
    projections from the log when it reads the revocation (and answers an inbound with no reply).
    Waits up to `wait_s` for what became of each."""
    from agentstream.wiring import run_retry_skipped

    return await run_retry_skipped(settings, business, event_id, wait_s)


@dlq_app.command("list")
def list_command(business: Annotated[Optional[str], typer.Option(help="only this business")] = None,
                 as_json: bool = typer.Option(False, "--json", help="a JSON array")) -> None:
    """The skipped events (the log's EventSkipped records not revoked), oldest skip first."""
    found = sorted(asyncio.run(list_skipped(one_shot(), business)), key=lambda s: s.skippedAt)
    if as_json:
        print(json.dumps([s.as_json() for s in found], ensure_ascii=False))
        return
    if not found:
        print("no skipped events")
    for s in found:
        print(f"{s.eventId}  {s.businessId}#{s.userId} seq {s.seq}  {s.type}  skipped {s.skippedAt} ({s.stage}): {s.error[:200]}")


@dlq_app.command("retry")
def retry_command(event: Annotated[Optional[str], typer.Option("--event", help="the skipped event's eventId (default: all)")] = None,
                  business: Annotated[Optional[str], typer.Option(help="only this business (without --event)")] = None,
                  wait: Annotated[float, typer.Option(help="seconds to wait for the worker to apply them")] = 30.0) -> None:
    """After a fix: append SkipRevoked for the skipped events; the worker folds their customers'
    projections again from the log and answers an inbound that had no reply. Exit 1 if one
    failed again (skipped again) or was not applied within --wait."""
    try:
        done = asyncio.run(retry_skipped(one_shot(), business, event, wait))
    except LookupError as exc:
        print(f"agentstream: {exc.args[0]}", file=sys.stderr)
        raise typer.Exit(1) from None
    if not done:
        print("no skipped events")
    for r in done:
        s = r.skipped
        outcome = r.outcome or f"not applied within {wait:g} s (is a worker running? it applies it when it reads it)"
        print(f"{s.eventId}  {s.businessId}#{s.userId} seq {s.seq}: SkipRevoked at seq {r.revocation_seq}; {outcome}")
    if any(r.outcome != "applied" for r in done):
        raise typer.Exit(1)
