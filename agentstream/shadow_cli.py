"""`agentstream shadow`: the options read and checked, the clients, the progress bar, the
records on `agent.shadow.v1` and the report files (the logic is streams/shadow.py)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.dynamo.business_messages import NoMessagesIndex
from agentstream.adapters.llm import OfflineResponder, OpenAIResponder, Responder
from agentstream.settings import Settings
from agentstream.streams.shadow import (DEFAULT_PRICES, Pair, ShadowError, ShadowOptions, parse_prices, report_paths,
                                        run_meta, shadow)
from agentstream.streams.shadow_report import build_report, money, write_report
from agentstream.wiring import shadow_clients


def read_options(business: str | None, since: str | None, limit: int, model: str | None, instructions: Path | None,
                 max_calls: int | None, concurrency: int, prices: Path | None, out: Path) -> ShadowOptions:
    """The command's options, checked; ShadowError (one line) for the first wrong one."""
    if not business:
        raise ShadowError("--business is required")
    if limit < 1:
        raise ShadowError("--limit must be at least 1")
    if max_calls is not None and max_calls < 0:
        raise ShadowError("--max-calls must be 0 or more")
    if not 1 <= concurrency <= 64:
        raise ShadowError("--concurrency must be between 1 and 64")
    if model is not None and not model.strip():
        raise ShadowError("--model is empty")
    text = _read(instructions, "--instructions") if instructions else None
    if text is not None and not text.strip():
        raise ShadowError(f"--instructions: {instructions} is empty")
    table = dict(DEFAULT_PRICES)
    if prices:
        try:
            table |= parse_prices(json.loads(_read(prices, "--prices")))
        except json.JSONDecodeError as exc:
            raise ShadowError(f"--prices: {prices} is not JSON ({exc.msg}, line {exc.lineno})") from None
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ShadowError(f"--out: no writable folder {folder} for the report")
    return ShadowOptions(business, _since(since), limit, model.strip() if model else None, text,
                         str(instructions) if instructions else None, max_calls, concurrency, table)


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShadowError(f"{option}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ShadowError(f"--since: {text!r} is not a date or time (e.g. 2026-11-01 or 2026-11-01T08:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def candidate_responder(settings: Settings, model: str | None) -> Responder:
    """The candidate model on the real `openai` client (no retries: one call is one request, a
    failed one is reported as a fallback); the offline responder when no key is set."""
    if not settings.openai_api_key:
        return OfflineResponder()
    return OpenAIResponder(settings.model_copy(update={"openai_model": model or settings.openai_model, "openai_max_retries": 0}))


async def run(settings: Settings, options: ShadowOptions, out: Path) -> dict[str, Any]:
    """Run the shadow replay with a progress bar on stderr; write the records and the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    for noisy in ("httpx", "httpx2", "openai"):  # one line per model call otherwise; the bar says how far it got
        logging.getLogger(noisy).setLevel(logging.WARNING)
    topic = settings.topic_shadow
    acks: list[Any] = []
    async with shadow_clients(settings) as (stores, producer):
        responder = candidate_responder(settings, options.model)
        try:
            meta = run_meta(settings, options, responder, topic)

            async def sink(pair: Pair) -> None:
                record = {"runId": meta["runId"], "business": options.business, **pair.to_json(),
                          "candidate": {k: meta["candidate"][k] for k in ("model", "instructionsSha256")}}
                acks.append(await producer.send(topic, kafka.dumps(record), key=pair.inbound.streamId.encode()))

            columns = (TextColumn("shadow replay"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeRemainingColumn())
            bar = Progress(*columns, console=Console(stderr=True), transient=False)

            def progress(done: int, total: int) -> None:
                if not bar.tasks:  # the inbounds are found: the bar starts
                    bar.start()
                    bar.add_task("inbounds", total=total)
                bar.update(bar.tasks[0].id, completed=done, total=total)

            try:
                pairs = await shadow(stores, settings, options, responder, sink, progress)
            except NoMessagesIndex as exc:
                raise ShadowError(str(exc)) from None
            finally:
                bar.stop()
            for ack in acks:
                await ack
        finally:
            await responder.close()
    report = build_report(meta, pairs)
    write_report(out, report)
    return report


def summary_lines(report: dict[str, Any], out: Path) -> list[str]:
    """What the person is told at the end."""
    s = report["summary"]
    html_path, json_path = report_paths(out)
    old, new = s["old"], s["new"]
    return [
        f"inbounds: {s['inbounds']}; asked: {s['asked']}; not asked (--max-calls): {s['notAsked']}; "
        f"not rebuilt: {s['notRebuilt']}; context reproduced: {s['reproduced']}; handoff notices: {s['handoffNotices']}",
        f"old: mean {old['meanLength']} chars, {old['fallbacks']} fallbacks, cost {money(old['costUsd'], old['costUnknown'])}; "
        f"new: mean {new['meanLength']} chars, {new['fallbacks']} fallbacks, cost {money(new['costUsd'], new['costUnknown'])}",
        f"report: {html_path} and {json_path}; pairs on {report['topic']}",
    ]
