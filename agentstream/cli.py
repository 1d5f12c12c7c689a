"""The `agentstream` command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from agentstream import logs, loops
from agentstream.configure import configured as _configured, one_shot as _one_shot
from agentstream.dlq_cli import dlq_app
from agentstream.settings import Settings, settings as load

app = typer.Typer(help="agentstream: event-sourced conversation backend for AI customer-service agents.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
credentials_app = typer.Typer(help="A business's channel secrets, stored encrypted.", no_args_is_help=True)
app.add_typer(credentials_app, name="credentials")
app.add_typer(dlq_app, name="dlq")
console = Console(stderr=True, soft_wrap=True)  # a message is one line, whatever the terminal width (or none)


def _needs_secret(s: Settings, why: str) -> Settings:
    """A process that signs or encrypts does not start without AGENTSTREAM_SECRET_KEY: one line, exit 2."""
    from agentstream.keys import SecretKeyMissing, keyring

    try:
        keyring(s, why)
    except SecretKeyMissing as exc:
        print(f"agentstream: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    return s


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]], loop: str) -> None:
    """Run a long-lived coroutine on the `loop` named (EVENT_LOOP); SIGINT/SIGTERM set its stop
    event for a clean shutdown. A process started by `up` or the tests (AGENTSTREAM_PARENT_PID)
    also stops when that parent dies, so a killed supervisor leaves no orphans."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        parent = os.environ.get("AGENTSTREAM_PARENT_PID")
        watch = asyncio.create_task(_stop_when_orphaned(int(parent), stop)) if parent else None
        await main(stop)
        if watch:
            watch.cancel()

    loops.run(runner(), loop)


async def _stop_when_orphaned(parent: int, stop: asyncio.Event, grace_s: float = 30.0) -> None:
    while os.getppid() == parent and not stop.is_set():
        await asyncio.sleep(1.0)
    if not stop.is_set():
        console.print(f"parent process {parent} is gone: stopping")
        stop.set()
        asyncio.get_running_loop().call_later(grace_s, os._exit, 1)  # a stop that hangs must not linger


@app.command()
def setup(partitions: Annotated[Optional[int], typer.Option(help="partitions of new topics")] = None,
          no_topics: bool = typer.Option(False, help="tables only")) -> None:
    """Create the tables (with GSIs and the events stream) and topics; idempotent."""
    from agentstream.bootstrap import setup as do_setup

    report, topics = asyncio.run(do_setup(_one_shot(), partitions, with_topics=not no_topics))
    console.print(f"tables created: {report.created or 'none'}; indexes added: {report.indexes_added or 'none'}; "
                  f"streams enabled: {report.streams_enabled or 'none'}; topics created: {topics or 'none'}")


@app.command()
def populate(data_dir: Annotated[Optional[Path], typer.Option(help="folder with the JSON data files")] = None) -> None:
    """Load system instructions, dynamic business RAG and business info from files."""
    from agentstream.bootstrap import BusinessDataError, populate as do_populate

    try:
        counts = asyncio.run(do_populate(_one_shot(), data_dir))
    except BusinessDataError as exc:
        print(f"agentstream: refused: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    for table, count in counts.items():
        console.print(f"{table}: {count} items")


@app.command()
def bridge() -> None:
    """Run the DynamoDB Streams → Kafka bridge."""
    from agentstream.wiring import run_bridge

    s = _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_bridge(s, stop), s.event_loop)


@app.command()
def worker() -> None:
    """Run the stream processor (projections, context, replies)."""
    from agentstream.wiring import run_worker

    s = _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_worker(s, stop), s.event_loop)


@app.command()
def gateway(port: Annotated[Optional[int], typer.Option(help="HTTP port (default GATEWAY_PORT_HTTP or 8080)")] = None) -> None:
    """Run the HTTP gateway (widget, webhooks, REST) and the widget replies of its sockets."""
    from agentstream.wiring import run_gateway

    s = _needs_secret(load(), "it encrypts channel secrets and signs cookies and snapshots")
    _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_gateway(s, stop, port), s.event_loop)


@app.command()
def delivery() -> None:
    """Run reply delivery for the external channels (Twilio SMS, Meta, Gmail); start several at once."""
    from agentstream.wiring import run_delivery

    s = _needs_secret(load(), "it decrypts channel secrets")
    _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_delivery(s, stop), s.event_loop)


@app.command()
def media() -> None:
    """Run the media process: customers' photos, voice notes and documents fetched, kept and transcribed; start several at once."""
    from agentstream.wiring import run_media

    s = _needs_secret(load(), "it decrypts channel secrets")
    _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_media(s, stop), s.event_loop)


@app.command()
def analytics(
    every: float = typer.Option(60.0, min=0.1, help="seconds between snapshots"),
    business: Annotated[Optional[str], typer.Option(help="only this business")] = None,
) -> None:
    """Run the analytics consumer; print each business's figures as one JSON line every N seconds."""
    from agentstream.wiring import run_analytics

    s = _needs_secret(load(), "it signs analytics snapshots")
    _configured(serve_metrics=True)
    _run_until_signal(lambda stop: run_analytics(s, stop, every, business), s.event_loop)


@app.command()
def up(port: int = typer.Option(8080, help="gateway port"),
       kafka_port: int = typer.Option(9092, help="Kafka's port"),
       kafka_controller_port: int = typer.Option(9093, help="Kafka's controller port"),
       dynamodb_port: int = typer.Option(8000, help="the local DynamoDB server's port"),
       bridge_metrics_port: int = typer.Option(9101, help="the bridge's metrics port"),
       worker_metrics_port: int = typer.Option(9102, help="the worker's metrics port"),
       gateway_metrics_port: int = typer.Option(9103, help="the gateway's metrics port"),
       scale: str = typer.Option("", help="how many of each process, e.g. gateway=2,worker=3,delivery=2,bridge=2")) -> None:
    """The whole stack on this machine: Kafka, ministack, tables, topics, demo data, bridge, worker, gateway, delivery."""
    from agentstream.local.scale import ScaleError, parse_scale
    from agentstream.stack import up as do_up

    try:
        counts = parse_scale(scale)
    except ScaleError as exc:
        raise typer.BadParameter(str(exc)) from None
    do_up(port, kafka_port, kafka_controller_port, dynamodb_port, bridge_metrics_port, worker_metrics_port, counts,
          gateway_metrics_port)


@app.command()
def replay(
    business: Annotated[Optional[str], typer.Option(help="only this business")] = None,
    user: Annotated[Optional[str], typer.Option(help="only this user (with --business)")] = None,
    as_of: Annotated[Optional[datetime], typer.Option(help="fold only events up to this time (UTC)")] = None,
    verify: bool = typer.Option(False, help="compare with the live tables instead of writing"),
    fresh: bool = typer.Option(False, help="the target tables are empty: write in unconditional batches (fast)"),
    source: Annotated[str, typer.Option(help="table (the events table) or kafka (agent.events.v1 from the beginning)")] = "table",
    projection: Annotated[Optional[str], typer.Option(help="only this projection (e.g. facts after its extractor changed)")] = None,
) -> None:
    """Rebuild the projections (sessions, messages, rag-dynamic-user, customer facts) from the log."""
    from agentstream.registry import by_name
    from agentstream.wiring import run_replay

    if user and not business:
        raise typer.BadParameter("--user needs --business")
    if source not in ("table", "kafka"):
        raise typer.BadParameter("--source is table or kafka")
    if projection:
        try:
            by_name(projection)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    report = asyncio.run(run_replay(_one_shot(), business, user, as_of, verify, fresh, source, projection))
    console.print(f"streams: {report.streams}; events folded: {report.events}")
    if verify:
        for line in report.differences:
            print(line)
        console.print("no differences" if not report.differences else f"{len(report.differences)} differences")
        raise typer.Exit(1 if report.differences else 0)


@app.command("import-legacy")
def import_legacy(
    messages_table: Annotated[Optional[str], typer.Option(help="the seed's messages table (default: the configured one)")] = None,
    sessions_table: Annotated[Optional[str], typer.Option(help="the seed's sessions table (default: the configured one)")] = None,
) -> None:
    """Append the seed server's stored messages to the log (idempotent); then run `replay`."""
    from agentstream.wiring import run_import_legacy

    r = asyncio.run(run_import_legacy(_one_shot(), messages_table, sessions_table))
    console.print(f"legacy messages: {r.messages}; appended: {r.appended}; already imported: {r.duplicates}; skipped: {r.skipped}")


def _forget_usage(problem: str) -> typer.Exit:
    """A wrong use of `forget`, in one line (exit 2)."""
    typer.echo(f"agentstream forget: {problem}", err=True)
    return typer.Exit(2)


@app.command()
def forget(
    business: Annotated[Optional[str], typer.Option(help="business id (required unless --check-proof)")] = None,
    user: Annotated[Optional[str], typer.Option(help="user id (required unless --check-proof)")] = None,
    proof: Annotated[Optional[Path], typer.Option(help="also write a signed erasure receipt (JSON) to this file")] = None,
    check_proof: Annotated[Optional[Path], typer.Option(help="verify a receipt --proof wrote (signature, counts); erases nothing")] = None,
) -> None:
    """Erase a user: events, every projection's items (sessions, messages, memory, facts). Says
    what Kafka still holds; --proof FILE writes a signed receipt, --check-proof FILE checks one."""
    if check_proof is not None:
        if business or user or proof:
            raise _forget_usage("--check-proof FILE takes no --business, --user or --proof")
        from agentstream.keys import keyring
        from agentstream.receipt import check

        settings = _configured()
        if not settings.credentials_key:
            raise _forget_usage("AGENTSTREAM_SECRET_KEY is not set: receipts are checked with the key that signed them")
        try:
            text = check_proof.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _forget_usage(f"cannot read {check_proof}: {exc}")
        verdict = check(text, keyring(settings).secrets)
        print(verdict.line)
        raise typer.Exit(0 if verdict.valid else 1)
    if not business or not user:
        raise _forget_usage("--business and --user are required (or --check-proof FILE to verify a receipt)")
    if proof is not None:
        from agentstream.streams.erasure import write_receipt
        from agentstream.wiring import run_forget_with_receipt

        settings = _one_shot()
        if not settings.credentials_key:
            raise _forget_usage("AGENTSTREAM_SECRET_KEY is not set: it signs the receipt (nothing erased)")
        if not proof.parent.is_dir() or not os.access(proof.parent, os.W_OK):
            raise _forget_usage(f"cannot write the receipt to {proof}: no writable folder {proof.parent} (nothing erased)")
        r, receipt = asyncio.run(run_forget_with_receipt(settings, business, user))
    else:
        from agentstream.wiring import run_forget

        r = asyncio.run(run_forget(_one_shot(), business, user))
    items = ", ".join(f"{table} {count}" for table, count in r.items.items())
    console.print(f"erased {business}#{user}: events {r.events}, idempotency records {r.idempotency_records}, {items}")
    if proof is None:
        for line in r.still_in_kafka:
            console.print("still in Kafka: " + line)
        return
    write_receipt(proof, receipt)
    for topic in receipt["kafka"]:
        if topic["exists"]:
            until = f"until {topic['until']} at the latest" if topic["until"] else "until deleted by hand (no retention bound)"
            console.print(f"still in Kafka: {topic['topic']} partition {topic['partition']} may hold the customer's records {until}")
    left = {where: n for where, n in receipt["left"].items() if n}
    console.print(f"receipt written to {proof}; items left after the erasure: "
                  + (", ".join(f"{where} {n}" for where, n in left.items()) if left else "none"))
    if left:
        raise typer.Exit(1)


@app.command()
def explain(event_id: str = typer.Argument(..., help="the eventId of a ReplyGenerated or of its inbound message"),
            as_json: bool = typer.Option(False, "--json", help="one JSON object")) -> None:
    """Why this reply: rebuild the exact context and prompt a reply was built from, from the log."""
    from agentstream.streams.explain import NotExplainable
    from agentstream.wiring import run_explain

    try:
        found = asyncio.run(run_explain(_one_shot(), event_id))
    except NotExplainable as exc:
        console.print(f"agentstream: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(found.to_json(), ensure_ascii=False, default=str))
        return
    print(render_explanation(found.to_json()))


def render_explanation(data: dict[str, Any]) -> str:
    """An explanation for a person: the message, the reply, whether it was reproduced, the facts,
    the time and the prompt."""
    reply = data["reply"] or {}
    lines = [f"inbound  {data['inbound']['eventId']} (seq {data['inbound']['seq']}, {data['inbound']['occurredAt']}): "
             f"{data['inbound']['content']}",
             f"reply    {reply.get('eventId', '-')}: {reply.get('content', '(none)')}",
             f"reproduced: {'yes' if data['reproduced'] else 'no'}",
             *(f"  difference: {d}" for d in data["differences"]),
             *(f"  note: {n}" for n in data["notes"]),
             "facts:", *(f"  {f['kind']}: {f['value']} (since {f['validFrom']}, {f['source']})" for f in data["context"]["facts"]),
             f"time: {data['context']['time']}", "prompt:"]
    lines += [f"  [{m['role']}] {m['content']}" for m in data["prompt"]]
    return "\n".join(lines)


@app.command()
def reconcile(
    business: Annotated[Optional[str], typer.Option(help="only this business")] = None,
    since: Annotated[Optional[datetime], typer.Option(help="only conversations with events appended since this time (UTC; the ingest index, no table scan)")] = None,
) -> None:
    """Publish log events the stream lost (past what the projections applied)."""
    from datetime import timezone

    from agentstream.wiring import run_reconcile

    if since is not None and business:
        typer.echo("agentstream reconcile: --since covers every business; drop --business", err=True)
        raise typer.Exit(2)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    report = asyncio.run(run_reconcile(_one_shot(), business, since))
    console.print(f"streams checked: {report.streams}; behind: {report.behind}; events published: {report.published}")


@app.command()
def status() -> None:
    """Topic sizes, worker and delivery lag, DLQ size, bridge shards and Gmail watch expiries."""
    from rich.table import Table

    from agentstream.streams.spend_release import describe_spend
    from agentstream.streams.status import describe_watch, describe_webhook
    from agentstream.wiring import run_status

    data = asyncio.run(run_status(_one_shot()))
    table = Table("what", "value")
    for topic, size in data["topics"].items():
        table.add_row(f"records in {topic}", str(size))
    table.add_row("worker lag (events)", str(data["workerLag"]))
    table.add_row("delivery lag (replies)", str(data["deliveryLag"]))
    table.add_row("DLQ size", str(data["dlqSize"]))
    for shard in data["bridgeShards"]:
        state = "finished" if shard["finished"] else ("read by " + shard["owner"] if shard["alive"] else "unowned")
        table.add_row(f"shard {shard['shard'][-12:]}", state)
    for watch in data["gmailWatches"] or []:
        table.add_row(f"gmail watch {watch['business']}", describe_watch(watch))
    if data["gmailWatches"] is None:
        table.add_row("gmail watches", "unknown: AGENTSTREAM_SECRET_KEY is not set or does not decrypt them")
    for hook in data.get("handoffWebhooks") or []:
        table.add_row(f"handoff webhook {hook['business']}", describe_webhook(hook))
    for row in data.get("spend") or []:
        table.add_row(f"model spend {row['business']}", describe_spend(row))
    Console().print(table)


@app.command()
def tail(topic: str = typer.Argument("agent.events.v1"), from_beginning: bool = typer.Option(False, "--from-beginning")) -> None:
    """Follow a topic, one JSON record a line."""
    from agentstream.adapters.kafka.client import follow

    s = _configured()
    _run_until_signal(lambda stop: follow(s, topic, from_beginning, stop), s.event_loop)


@app.command()
def bench(name: str = typer.Argument(..., help="bridge | pipeline | direct | replay | worker | model-server")) -> None:
    """Run a benchmark on real services; prints figures and ends with one JSON line. `direct` runs
    the pipeline bench's baseline (the seed's request/response flow) alone; `model-server`
    runs the benches' local OpenAI-compatible model on its own (BENCH_MODEL_PORT, BENCH_MODEL_DELAY_MS)."""
    import importlib

    if name not in ("bridge", "pipeline", "direct", "replay", "worker", "model-server"):
        raise typer.BadParameter(f"unknown benchmark {name!r}: bridge, pipeline, direct, replay, worker or model-server")
    name = name.replace("-", "_")
    logs.configure("WARNING", "console")
    importlib.import_module(f"agentstream.bench.{name}").main()


@app.command()
def schemas(out: Path = typer.Option(Path("schemas"), help="folder for the JSON Schemas"),
            reference: Path = typer.Option(Path("docs/reference"), help="folder for the generated reference")) -> None:
    """Write the JSON Schema of every event type into a folder, the registered channels into
    the package's `data/channels.json`, and the reference (CLI, settings, OpenAPI, AsyncAPI)."""
    from agentstream.reference import write_reference
    from agentstream.adapters.channels.registry import render_catalog
    from agentstream.channel_specs import CATALOG
    from agentstream.schemas import write_schemas

    for path in write_schemas(out):
        console.print(str(path))
    CATALOG.write_text(render_catalog(), encoding="utf-8")
    console.print(str(CATALOG))
    for path in write_reference(reference, app):
        console.print(str(path))


@app.command()
def shadow(
    business: Annotated[Optional[str], typer.Option(help="the business whose past inbound messages are replayed")] = None,
    since: Annotated[Optional[str], typer.Option(help="only messages from this time (ISO, UTC unless it says)")] = None,
    limit: Annotated[int, typer.Option(help="the latest N inbound messages that got a reply")] = 100,
    model: Annotated[Optional[str], typer.Option(help="candidate model (default OPENAI_MODEL)")] = None,
    instructions: Annotated[Optional[Path], typer.Option(help="file with the candidate system instructions")] = None,
    max_calls: Annotated[Optional[int], typer.Option(help="hard cap on model calls")] = None,
    concurrency: Annotated[int, typer.Option(help="inbound messages in flight at once")] = 4,
    prices: Annotated[Optional[Path], typer.Option(help='JSON {"model": {"input": USD/1M tokens, "output": …}}')] = None,
    out: Annotated[Path, typer.Option(help="the report (HTML; the JSON beside it)")] = Path("shadow-report.html"),
) -> None:
    """Try a new prompt or model on past traffic: rebuild each reply's context as `explain` does,
    ask the candidate, write the pairs to agent.shadow.v1 and a report; never appends or delivers."""
    from agentstream.shadow_cli import read_options, run, summary_lines
    from agentstream.streams.shadow import ShadowError

    try:
        options = read_options(business, since, limit, model, instructions, max_calls, concurrency, prices, out)
        report = asyncio.run(run(_one_shot(), options, out))
    except ShadowError as exc:
        typer.echo(f"agentstream shadow: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in summary_lines(report, out):
        typer.echo(line, err=True)


@credentials_app.command("set")
def credentials_set(business: str, provider: str, values: list[str]) -> None:
    """Set secrets: `agentstream credentials set BUSINESS PROVIDER KEY=VALUE…`."""
    from agentstream.credentials_cli import set_values

    pairs = dict(_pair(v) for v in values)
    keys = asyncio.run(set_values(_one_shot(), business, provider, pairs))
    console.print(f"{business}/{provider}: set {', '.join(sorted(keys))}")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected KEY=VALUE, got {text.split('=')[0]!r}…")
    return key, value


@credentials_app.command("show")
def credentials_show(business: str, provider: str) -> None:
    """Show which secrets are set, masked."""
    from agentstream.credentials_cli import show_values

    print(json.dumps(asyncio.run(show_values(_one_shot(), business, provider)), indent=2))


@credentials_app.command("rotate")
def credentials_rotate(business: str, provider: str) -> None:
    """Replace the secret agentstream issues for a provider (widget, rest, meta verifyToken, gmail pushToken)."""
    from agentstream.credentials_cli import rotate_value

    fresh = asyncio.run(rotate_value(_one_shot(), business, provider))
    for key, value in fresh.items():
        print(f"{key}={value}")


@credentials_app.command("rekey")
def credentials_rekey() -> None:
    """Seal every stored secret (and channel state) again under the current AGENTSTREAM_SECRET_KEY;
    run after moving the old key to AGENTSTREAM_PREVIOUS_SECRET_KEYS, with everything running."""
    from agentstream.credentials_cli import rekey_all

    report = asyncio.run(rekey_all(_one_shot()))
    if report.unreadable:
        print(f"agentstream: {len(report.unreadable)} of {report.rows} rows cannot be decrypted with any key "
              f"(first: {report.unreadable[0]}); {report.rekeyed} rekeyed", file=sys.stderr)
        raise typer.Exit(2)
    console.print(f"rekeyed {report.rekeyed} of {report.rows} rows; every row is sealed under the current key")


@credentials_app.command("keygen")
def credentials_keygen() -> None:
    """Print a new AGENTSTREAM_SECRET_KEY (the key that encrypts credentials at rest)."""
    from agentstream.adapters.dynamo.credentials import new_secret_key

    print(new_secret_key())


def what_to_do(exc: BaseException) -> str | None:
    """What to do about an error a person can fix, in one line; None for anything else (a bug)."""
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from agentstream.adapters.dynamo.credentials import CredentialsError
    from agentstream.adapters.kafka.client import TopicMissing
    from agentstream.keys import SecretKeyMissing
    from agentstream.local.scale import PortTaken

    if isinstance(exc, BaseExceptionGroup):
        return next(filter(None, map(what_to_do, exc.exceptions)), None)
    if isinstance(exc, NoCredentialsError):
        return ("no AWS credentials: for the local stack set DYNAMODB_ENDPOINT_URL (`make up` writes it to .env), "
                "for AWS configure credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID…)")
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach DynamoDB at {exc.kwargs.get('endpoint_url')}: start it (`make up`) "
                "or fix DYNAMODB_ENDPOINT_URL")
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
        return f"a DynamoDB table is missing ({exc.response['Error'].get('Message')}): run `agentstream setup`"
    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError)):
        return (f"cannot reach Kafka at {load().kafka_bootstrap_servers}: start it (`make up`) "
                "or fix KAFKA_BOOTSTRAP_SERVERS")
    if isinstance(exc, KafkaError) and exc.retriable:  # e.g. no group coordinator yet on a fresh broker
        return f"Kafka is not ready ({type(exc).__name__}): try again in a moment"
    if isinstance(exc, (CredentialsError, TopicMissing, PortTaken, SecretKeyMissing)):
        return str(exc)
    return None


def main() -> None:
    """Entry point: a missing credential, an unreachable service or a missing table ends in one
    line saying what to do, exit code 2, not a traceback."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except Exception as exc:
        line = what_to_do(exc)
        if line is None:
            raise
        print(f"agentstream: {line}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
