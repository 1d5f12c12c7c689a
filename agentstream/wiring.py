"""The composition root: builds each process (bridge, worker, gateway, delivery, analytics) and
each one-shot command's clients from the settings, and hands the processes under streams/ their
stores, producer, consumer factory and configuration (they build no client of their own)."""

from __future__ import annotations

import asyncio
import sys
import json
import uuid
from functools import partial
from types import SimpleNamespace
from datetime import datetime, timezone
from contextlib import AsyncExitStack, asynccontextmanager
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.signals import Signals, relay_signals, show_typing
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.channels.gmail import BASE_URL as GMAIL_BASE_URL, GmailClient
from agentstream.adapters.channels.gmail_auth import GmailAuth
from agentstream.adapters.dynamo.credentials import CredentialsError, CredentialStore, credential_store
from agentstream.adapters.dynamo.client import clients, dynamodb_client, s3_client
from agentstream.adapters.media_bucket import MediaBucket
from agentstream.streams.media_wait import MediaWait
from agentstream.adapters.dynamo.lean_client import hot_dynamodb_client
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.http.gateway import create_app
from agentstream.adapters.http.common import Deps
from agentstream.adapters.ingest import Ingestor
from agentstream.adapters.kafka.client import KafkaClients
from agentstream.adapters.owner_webhook import OwnerWebhook
from agentstream.adapters.dynamo.pending_reconcile import PendingReconcile
from agentstream.adapters.http.rate_limits import GatewayLimits
from agentstream.adapters.http.visitors import VisitorRecords
from agentstream.adapters.llm import make_responder
from agentstream.adapters.dynamo.position_store import PositionStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore, get_active_session_for_user, positions, sessions_of_user
from agentstream.adapters.settled_heads import SettledHeads
from agentstream.adapters.dynamo.tables import stream_arn
from agentstream.adapters.http.ws_hub import SocketHub
from agentstream.events import Event
from agentstream.registry import PROJECTIONS, by_name
from agentstream.projections.base import Projection
from agentstream.settings import Settings
from agentstream.streams.analytics import AnalyticsConsumer, AnalyticsSnapshots
from agentstream.streams.bridge import Bridge, BridgeConfig, new_owner
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.delivery import ExternalDelivery, SocketDelivery, external_runner, socket_runner
from agentstream.streams.gmail_watch import EVERY_S, WatchRenewer, run_watch_renewal
from agentstream.streams.leases import HeldLease, LeaseTable
from agentstream.streams.explain import Explainer
from agentstream.streams.replay import Replayer, ReplayStores
from agentstream.streams.forget import ForgetStores
from agentstream.streams.shadow import ShadowStores
from agentstream.adapters.dynamo.erasure_store import ErasureStore
from agentstream.adapters.dynamo.lease_store import LeaseStore
from agentstream.adapters.dynamo.snapshots import SnapshotStore
from agentstream.adapters.dynamo.client import scan_all
from agentstream.keys import keyring
from agentstream.adapters.dynamo.inbox_views import InboxViews
from agentstream.adapters.dynamo.business_messages import customer_messages
from agentstream.adapters.dynamo.replay_store import BatchWriter, LiveItems
from agentstream.adapters.dynamo.bookings import BookingsTable
from agentstream.adapters.http.bookings_service import Bookings
from agentstream.streams.appointment_requests import AppointmentAnswers, AppointmentRequester, chained
from agentstream.streams.fact_extraction import make_fact_extractor
from agentstream.streams.handoff_notify import make_handoff_notifier
from agentstream.streams.keyed import KeyedExecutor
from agentstream.streams.outbound import external_sender, typing_sender
from agentstream.streams.reconcile import Reconciler, reconcile, reconcile_window
from agentstream.streams.status import Watched, collect, export_lag
from agentstream.streams.stopping import UPGRADE_EXIT_CODE, UpgradeNeeded, wait_or_stop
from agentstream.streams.dead_letters import SkipRecorder
from agentstream.adapters.dynamo.dead_letters import DeadLetterIndex
from agentstream.adapters.kafka.dlq import Dlq
from agentstream.streams.positions import PositionKeeper, resume_group
from agentstream.streams.worker import build_app
from agentstream.streams.expiry import ExpiryTimer, run_expiry
from agentstream.streams.selfcheck import check_sessions_and_messages
from agentstream.streams.reminder_timer import LEASE as REMINDER_LEASE, ReminderTimer, run_reminders
from agentstream.streams.clock import clock_from
from agentstream.adapters.reminder_index import DynamoDueIndex
from agentstream.adapters.dynamo.usage import UsageStore
from agentstream.adapters.http.owner_service import OwnerService
from agentstream.streams.spend import PriceError, PriceTable, SpendMeter
from agentstream.streams.spend_release import BudgetReleaser, background_warner, month_spend, run_release
from agentstream.adapters.dynamo.dead_letters import business_ids

log = structlog.get_logger(__name__)
T = TypeVar("T")


def kafka_clients(settings: Settings) -> KafkaClients:
    """The consumer factory of the configured Kafka."""
    return KafkaClients(settings.kafka_bootstrap_servers)


def watched(settings: Settings) -> Watched:
    """What `status` and the lag gauges measure."""
    return Watched(kafka.topics(settings), settings.topic_dlq, settings.topic_events, settings.topic_replies,
                   settings.worker_group, settings.delivery_group)


def analytics_consumer(settings: Settings, snapshots_ddb: Any = None) -> AnalyticsConsumer:
    """The analytics consumer, saving its snapshots through `snapshots_ddb` (none without)."""
    snapshots = None if snapshots_ddb is None else AnalyticsSnapshots(SnapshotStore(
        snapshots_ddb, settings.tables.analytics_snapshots, keyring(settings, "it signs analytics snapshots")), settings)
    return AnalyticsConsumer(settings, kafka_clients(settings), snapshots=snapshots)


async def handoff_notifier(stack: AsyncExitStack, settings: Settings, ddb: Any, producer: Any) -> Any:
    """The worker's notifier: the topic always; the webhooks when AGENTSTREAM_SECRET_KEY is set
    (it decrypts their URL and secret), over one HTTP client closed with `stack`."""
    try:
        credentials = credential_store(ddb, settings)
    except CredentialsError:
        log.warning("handoff.webhooks_off", why="AGENTSTREAM_SECRET_KEY is not set")
        return make_handoff_notifier(producer, settings.topic_handoffs, None)
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
    return make_handoff_notifier(producer, settings.topic_handoffs, OwnerWebhook(credentials, http))


def state_tables(settings: Settings) -> list[str]:
    """The tables of the registered projections' per-customer state items (their positions)."""
    return [getattr(settings.tables, p.table) for p in PROJECTIONS]


def applied_seqs(ddb: Any, settings: Settings) -> Callable[[list[str]], Awaitable[dict[str, int]]]:
    """What the registered projections applied of each stream (reconcile's `applied`)."""
    return partial(positions, ddb, state_tables(settings))


def lease_table(ddb: Any, table: str, owner: str, ttl_ms: int = 10_000) -> LeaseTable:
    """The leases of `table`, taken as `owner` for `ttl_ms`."""
    return LeaseTable(LeaseStore(ddb, table), owner, ttl_ms)


async def _started_producer(stack: AsyncExitStack, settings: Settings) -> Any:
    producer = kafka.producer(settings)
    await producer.start()
    stack.push_async_callback(producer.stop)
    return producer


def signal_sender(producer: Any, topic: str) -> Callable[[bytes, bytes], Awaitable[None]]:
    """Puts a signal on its topic without waiting for the broker: a lost signal is harmless."""

    async def send(key: bytes, value: bytes) -> None:
        await producer.send(topic, key=key, value=value)

    return send


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    async with AsyncExitStack() as stack:
        ddb, streams = await stack.enter_async_context(clients(settings))
        producer = await _started_producer(stack, settings)
        config = BridgeConfig(
            stream_arn=await stream_arn(ddb, settings.tables.events),
            topic=settings.topic_events,
            start_position=settings.bridge_start_position,
            idle_poll_s=settings.bridge_idle_poll_s,
        )
        store = EventStore(ddb, settings.tables.events)

        async def run(since: datetime | None) -> Any:
            if since is None:  # a lost position of unknown time: every conversation
                return await reconcile(store, applied_seqs(ddb, settings), producer, settings.topic_events)
            return await reconcile_window(store, applied_seqs(ddb, settings), producer, settings.topic_events, since)

        reconciler = Reconciler(run, PendingReconcile(ddb, settings.tables.leases))

        async def on_loss(why: str, since: datetime | None) -> None:
            log.warning("bridge.reconciling", why=why, since=since.isoformat() if since else "all")
            await reconciler.request(since)  # recorded, then run by the reconciler's own task

        bridge = Bridge(streams, producer, lease_table(ddb, settings.tables.leases, new_owner(), settings.bridge_lease_ttl_ms), config, on_loss)
        reconciling = asyncio.create_task(reconciler.run(stop), name="reconcile")
        try:
            await bridge.run(stop)
        finally:  # a run cut short stays asked for in the table: the next bridge runs it
            reconciling.cancel()
            await asyncio.gather(reconciling, return_exceptions=True)


async def run_reconcile(settings: Settings, business_id: str | None = None, since: datetime | None = None) -> Any:
    """Every conversation (a table scan), or with `since` those with events appended since then."""
    async with AsyncExitStack() as stack:
        ddb = await stack.enter_async_context(dynamodb_client(settings))
        producer = await _started_producer(stack, settings)
        store = EventStore(ddb, settings.tables.events)
        if since is not None:
            return await reconcile_window(store, applied_seqs(ddb, settings), producer, settings.topic_events, since)
        return await reconcile(store, applied_seqs(ddb, settings), producer, settings.topic_events, business_id)


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    async with AsyncExitStack() as stack:
        ddb = await stack.enter_async_context(dynamodb_client(settings))
        hot = await stack.enter_async_context(hot_dynamodb_client(settings))  # a turn's calls
        producer = await _started_producer(stack, settings)
        store = EventStore(hot, settings.tables.events)
        directory = BusinessDirectory(hot, settings.tables)
        images = None
        if settings.media.model_accepts_images:  # the model is given the customers' photos from the bucket
            images = MediaBucket(await stack.enter_async_context(s3_client(settings)), settings.media.bucket).get
        responder = make_responder(settings, images)
        stack.push_async_callback(responder.close)  # the model client's connection pool
        meter = await spend_meter(stack, settings, ddb, hot)

        async def publish_reply(reply: Event, first: bool = False) -> None:
            await (await producer.send(settings.topic_replies, key=reply.streamId.encode(), value=kafka.dumps(reply.to_json_dict()),
                                       headers=[kafka.FIRST_PUBLICATION] if first else None))

        notify_owner = await handoff_notifier(stack, settings, ddb, producer)  # agent.handoffs.v1 and the webhook
        processor = ConversationProcessor(
            store, ProjectionStore(hot, settings.tables), directory, responder, publish_reply,
            default_idle_minutes=settings.session_idle_minutes, prompt_budget_chars=settings.prompt_budget_chars,
            default_quiet_ms=settings.reply_after_quiet_ms, signals=Signals(signal_sender(producer, settings.topic_signals)),
            after_reply=chained(AppointmentAnswers(Bookings(store, directory, BookingsTable(hot, settings.tables))),
                                AppointmentRequester(store, notify_owner), make_fact_extractor(settings, store, responder, meter)),
            on_handoff=notify_owner,
            media_wait=MediaWait(settings.media.wait_ms, settings.media.model_accepts_images),
            spend=meter,  # the budget check before each model call; each reply's spend in its append
        )
        executor = KeyedExecutor(settings.worker_max_inflight)
        upgrade: list[str] = []

        def on_upgrade_needed(why: str) -> None:
            upgrade.append(why)
            stop.set()

        positions = await resumed_positions(settings, ddb)  # before the app joins the group
        app = build_app(settings, processor, Dlq(producer, settings.topic_dlq), executor,
                        on_upgrade_needed=on_upgrade_needed,
                        skips=SkipRecorder(store, DeadLetterIndex(ddb, settings.tables.events)), positions=positions)

        await app.start()
        log.info("worker.started", topic=settings.topic_events)
        if positions is not None:
            positions.start(settings.worker_positions_every_s)
        releasing = asyncio.create_task(budget_release(settings, ddb, store, directory, meter, stop))
        try:
            await asyncio.gather(session_timer(settings, ddb, store, stop), reminder_timer(settings, ddb, store, stop))
        finally:
            await asyncio.gather(releasing, return_exceptions=True)
            await asyncio.wait_for(executor.join(), timeout=30)
            if positions is not None:
                await positions.stop()
            await app.stop()
            log.info("worker.stopped")
    if upgrade:
        print(f"agentstream worker: stopped: {upgrade[0]} (upgrade this worker; nothing was skipped)", file=sys.stderr)
        raise SystemExit(UPGRADE_EXIT_CODE)


async def spend_meter(stack: AsyncExitStack, settings: Settings, ddb: Any, hot: Any) -> SpendMeter:
    """The spend ceiling's meter: the usage table, the price table (MODEL_PRICES over the built-in
    one) and the owner's webhook for the 80 % and 100 % notices (when AGENTSTREAM_SECRET_KEY is set)."""
    try:
        prices = PriceTable.parse(settings.model_prices)
    except PriceError as exc:
        raise SystemExit(f"agentstream worker: MODEL_PRICES: {exc}") from None
    try:
        credentials = credential_store(ddb, settings)
    except CredentialsError:
        webhook = None
    else:
        webhook = OwnerWebhook(credentials, await stack.enter_async_context(httpx.AsyncClient(timeout=10)))
    return SpendMeter(UsageStore(hot, settings.tables.usage, settings.tables.events), prices, background_warner(webhook))


async def budget_release(settings: Settings, ddb: Any, store: EventStore, directory: BusinessDirectory,
                         meter: SpendMeter, stop: asyncio.Event) -> None:
    """Until `stop`: one worker at a time gives the budget handoffs back to the AI once there is
    budget again, every SPEND_RELEASE_EVERY seconds (0: this worker leaves it to the others)."""
    every_s = settings.spend_release_every_s
    if not every_s:
        return
    owner = OwnerService(store, ProjectionStore(ddb, settings.tables), directory)
    releaser = BudgetReleaser(UsageStore(ddb, settings.tables.usage, settings.tables.events), meter, owner, directory.info)
    lease = lease_table(ddb, settings.tables.leases, f"worker-{uuid.uuid4().hex[:8]}", int(3 * every_s * 1000))
    await run_release(releaser, HeldLease(lease, "timer:spend-release"), stop, every_s)


async def resumed_positions(settings: Settings, ddb: Any) -> PositionKeeper | None:
    """The worker's group moved to the saved positions it lacks; the keeper of its positions
    (None when WORKER_POSITIONS_EVERY is 0)."""
    if not settings.worker_positions_every_s:
        return None
    store = PositionStore(ddb, settings.tables.leases, "worker")
    await resume_group(kafka_clients(settings), settings.worker_group, settings.topic_events, store)
    return PositionKeeper(store, settings.topic_events)


async def session_timer(settings: Settings, ddb: Any, store: EventStore, stop: asyncio.Event) -> None:
    """Until `stop`: one worker at a time (the lease) expires and nudges the sessions that are due,
    every SESSION_TIMER_EVERY seconds; 0 leaves the timer to the other workers."""
    every_s = settings.session_timer_every_s
    if not every_s:
        await stop.wait()
        return
    lease = lease_table(ddb, settings.tables.leases, f"worker-{uuid.uuid4().hex[:8]}", int(3 * every_s * 1000))
    await run_expiry(ExpiryTimer(lease, ProjectionStore(ddb, settings.tables), store), stop, every_s)


async def reminder_timer(settings: Settings, ddb: Any, store: EventStore, stop: asyncio.Event) -> None:
    """Until `stop`: one worker at a time (the lease) appends the reminders that are due, every
    REMINDER_TIMER_EVERY seconds, on the clock CLOCK_FILE names (else the system's)."""
    every_s = settings.reminder_timer_every_s
    if not every_s:
        await stop.wait()
        return
    lease = lease_table(ddb, settings.tables.leases, f"worker-{uuid.uuid4().hex[:8]}", int(3 * every_s * 1000) + 1000)
    timer = ReminderTimer(HeldLease(lease, REMINDER_LEASE), DynamoDueIndex(ddb, settings.tables.reminders), store,
                          clock_from(settings.clock_file))
    await run_reminders(timer, stop, every_s)


async def gateway_deps(stack: AsyncExitStack, settings: Settings) -> Deps:
    ddb = await stack.enter_async_context(dynamodb_client(settings))
    hot = await stack.enter_async_context(hot_dynamodb_client(settings))  # ingest, replies, business data
    store = EventStore(hot, settings.tables.events)
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=15))
    credentials = credential_store(ddb, settings, settings.cache_entries)
    heads = SettledHeads()
    return Deps(
        settings=settings, ddb=ddb, store=store, ingestor=Ingestor(store, heads), heads=heads,
        directory=BusinessDirectory(hot, settings.tables, entries=settings.cache_entries),
        projections=ProjectionStore(hot, settings.tables),
        credentials=credentials, hub=SocketHub(), http=http, gmail=GmailAuth(credentials, settings.google_token_uri),
        explainer=new_explainer(ddb, settings), limits=GatewayLimits(settings, hot),
        visitors=VisitorRecords(hot, settings.tables.widget_visitors, settings.widget_visitor_lifetime_days * 86_400),
        media=MediaBucket(await stack.enter_async_context(s3_client(settings)), settings.media.bucket),
    )


def gmail_watch_renewer(d: Deps, owner: str, ttl_ms: int = int(3 * EVERY_S * 1000)) -> WatchRenewer:
    """The Gmail watch timer of a gateway; its lease outlives three rounds."""

    async def watch(business_id: str, topic: str) -> dict[str, Any]:
        return await GmailClient(d.http, GMAIL_BASE_URL.resolve(d.settings), d.gmail, business_id).watch(topic)

    leases = lease_table(d.ddb, d.settings.tables.leases, owner, ttl_ms)
    return WatchRenewer(leases, d.credentials, watch)


async def run_gateway(settings: Settings, stop: asyncio.Event, port: int | None = None) -> None:
    """The HTTP gateway and, in the same process, the widget replies of the sockets it holds
    (`streams.delivery.socket_runner`), the analytics consumer (its figures are served at GET
    /v1/analytics/{businessId}) and the Gmail watch timer (one gateway at a time renews, by
    lease). External channels are `agentstream delivery`'s."""
    async with AsyncExitStack() as stack:
        d = await gateway_deps(stack, settings)
        consumer = await _latest_replies_consumer(stack, settings)  # positioned before the first socket opens
        producer = await _started_producer(stack, settings)
        d.signals = Signals(signal_sender(producer, settings.topic_signals))  # a revoked visitor's sockets, on every gateway
        sockets = socket_runner(consumer, SocketDelivery(d.store, d.hub, d.heads), Dlq(producer, settings.topic_dlq))
        signals = await _latest_replies_consumer(stack, settings, settings.topic_signals)  # typing and streamed text
        d.analytics = analytics_consumer(settings, d.ddb)
        server = uvicorn.Server(uvicorn.Config(
            create_app(d), host=settings.gateway_host, port=settings.gateway_port if port is None else port,
            log_level="warning", lifespan="off", ws_max_size=64 * 1024,
        ))
        delivering = asyncio.create_task(sockets.run(stop))
        delivering.add_done_callback(lambda _: stop.set())  # the reply loop never ends on its own: stop loudly
        analysing = asyncio.create_task(d.analytics.run(stop))
        stop_on_error(analysing, stop)
        serving = asyncio.create_task(serve(server))
        stop_on_error(serving, stop)
        tasks = [serving, delivering, analysing,
                 asyncio.create_task(export_lag(kafka_clients(settings), watched(settings), stop)),
                 asyncio.create_task(relay_signals(signals, d.hub, stop)),
                 asyncio.create_task(run_watch_renewal(gmail_watch_renewer(d, f"gateway-{uuid.uuid4().hex[:8]}"), stop))]
        await stop.wait()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
    _exit_if_died("gateway", serving)
    _exit_if_died("gateway", delivering)
    _exit_if_died("gateway", analysing)


class CannotListen(RuntimeError):
    """The gateway's HTTP server could not start (its port taken, say)."""


async def serve(server: uvicorn.Server) -> None:
    """uvicorn's server. Its start-up failure is raised as CannotListen: uvicorn itself exits
    with code 3, which is `UPGRADE_EXIT_CODE` (a supervisor would not restart the gateway)."""
    try:
        await server.serve()
    except SystemExit:
        raise CannotListen(f"cannot listen on {server.config.host}:{server.config.port}") from None


async def _latest_replies_consumer(stack: AsyncExitStack, settings: Settings, topic: str | None = None) -> AIOKafkaConsumer:
    """Every partition of `agent.replies.v1` (or `topic`) from its end, no group: each gateway
    sees every reply published after it started (earlier ones reach a socket from the log on connect)."""
    topic = topic or settings.topic_replies
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="latest", metadata_max_age_ms=kafka.METADATA_MAX_AGE_MS)
    await consumer.start()
    stack.push_async_callback(consumer.stop)
    numbers = (await kafka.partitions_of(settings.kafka_bootstrap_servers, [topic])).get(topic)
    if not numbers:
        raise kafka.TopicMissing(f"topic {topic} does not exist: run `agentstream setup`")
    partitions = [TopicPartition(topic, p) for p in numbers]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # resolved now, not at the first fetch
    return consumer


async def run_delivery(settings: Settings, stop: asyncio.Event) -> None:
    """`agentstream delivery`: external-channel replies, one of any number in `DELIVERY_GROUP`."""
    async with AsyncExitStack() as stack:
        ddb = await stack.enter_async_context(dynamodb_client(settings))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=15))
        credentials = credential_store(ddb, settings)
        channel_deps = SimpleNamespace(credentials=credentials, http=http,
                                       gmail=GmailAuth(credentials, settings.google_token_uri))
        producer = await _started_producer(stack, settings)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.delivery_group,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    metadata_max_age_ms=kafka.METADATA_MAX_AGE_MS)
        hot = await stack.enter_async_context(hot_dynamodb_client(settings))
        delivery = ExternalDelivery(EventStore(hot, settings.tables.events), external_sender(channel_deps, settings))
        runner = external_runner(consumer, delivery, Dlq(producer, settings.topic_dlq))
        consumer.subscribe([settings.topic_replies], listener=runner.listener())
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        log.info("delivery.started", topic=settings.topic_replies, group=settings.delivery_group)
        typing = await _latest_replies_consumer(stack, settings, settings.topic_signals)  # vendor typing, from now on
        showing = asyncio.create_task(show_typing(typing, typing_sender(channel_deps, settings), stop))
        task = asyncio.create_task(runner.run(stop))
        await asyncio.gather(task, return_exceptions=True)
        showing.cancel()
        await asyncio.gather(showing, return_exceptions=True)
        log.info("delivery.stopped")
    _exit_if_died("delivery", task)


def stop_on_error(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """A task of a process that fails sets `stop`: the process stops (and `_exit_if_died` says why)."""
    task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or stop.set())


def _exit_if_died(process: str, task: asyncio.Task[None]) -> None:
    """A consumer loop that ended with an error stops its process with a non-zero code (3 when
    it met an event this build cannot read), so a supervisor sees it."""
    exc = None if task.cancelled() else task.exception()
    if isinstance(exc, UpgradeNeeded):
        print(f"agentstream {process}: stopped: {exc} (upgrade this {process}; nothing was skipped)", file=sys.stderr)
        raise SystemExit(UPGRADE_EXIT_CODE)
    if exc is not None:
        log.error(f"{process}.consumer_died", error=f"{type(exc).__name__}: {exc}"[:300])
        raise SystemExit(1)


async def run_analytics(settings: Settings, stop: asyncio.Event, every_s: float = 60.0,
                        business_id: str | None = None) -> None:
    """The analytics consumer alone (resumed from its saved snapshot); every `every_s` seconds
    one JSON line per business on stdout."""
    async with dynamodb_client(settings) as ddb:
        analytics = analytics_consumer(settings, ddb)
        task = asyncio.create_task(analytics.run(stop))
        stop_on_error(task, stop)
        while not stop.is_set():
            await wait_or_stop(stop, every_s)
            for business in [business_id] if business_id else analytics.businesses():
                print(json.dumps(analytics.snapshot(business), ensure_ascii=False), flush=True)
        await asyncio.gather(task, return_exceptions=True)
    _exit_if_died("analytics", task)


def new_explainer(ddb: Any, settings: Settings) -> Explainer:
    """`explain` on the configured tables (a fresh directory: it reads the business data as it is now)."""
    return Explainer(EventStore(ddb, settings.tables.events), BusinessDirectory(ddb, settings.tables), settings)


def new_replayer(ddb: Any, settings: Settings, fresh: bool = False, registry: Sequence[Projection] = PROJECTIONS,
             concurrency: int = 16) -> Replayer:
    """`replay` on the tables of `settings`; `fresh`: into empty tables, in unconditional batches."""
    t = settings.tables
    stores = ReplayStores(EventStore(ddb, t.events), ProjectionStore(ddb, t), BusinessDirectory(ddb, t, ttl_s=600),
                          UsageStore(ddb, t.usage, t.events), LiveItems(ddb), BatchWriter(ddb) if fresh else None)
    return Replayer(stores, settings, concurrency, registry)


def forget_stores(ddb: Any, settings: Settings) -> ForgetStores:
    """What `forget`, its receipt's check and `selfcheck` read and delete, on the configured tables."""
    t = settings.tables
    return ForgetStores(EventStore(ddb, t.events), ProjectionStore(ddb, t), ErasureStore(ddb), InboxViews(ddb, t.inbox_views),
                        BusinessDirectory(ddb, t), partial(sessions_of_user, ddb, t))


def shadow_stores(ddb: Any, settings: Settings) -> ShadowStores:
    """What `shadow` reads: the log, the business data and the messages index."""
    return ShadowStores(EventStore(ddb, settings.tables.events), BusinessDirectory(ddb, settings.tables),
                        partial(customer_messages, ddb, settings.tables))


async def run_replay(settings: Settings, business_id: str | None, user_id: str | None,
                     as_of: Any = None, verify: bool = False, fresh: bool = False, source: str = "table",
                     projection: str | None = None) -> Any:
    """Replay from the events table or from `agent.events.v1`, with a progress bar (rate and ETA)
    on stderr; every registered projection, or only the one named."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from agentstream.streams.replay import Scope
    from agentstream.streams.topic_source import read_topic_events

    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    scope = Scope(business_id, user_id, as_of)
    topic = await read_topic_events(kafka_clients(settings), settings.topic_events, scope.wants) if source == "kafka" else None
    async with dynamodb_client(settings) as ddb:
        registry = (by_name(projection),) if projection else PROJECTIONS
        rebuild = new_replayer(ddb, settings, fresh=fresh and not verify, registry=registry)
        heads = None if topic else await rebuild.streams(scope)
        total = sum(map(len, topic.by_stream.values())) if topic else sum(heads.values())
        columns = (TextColumn(f"replay from {source}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[rate]} events/s"), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task("events", total=total, rate="0")
            started = asyncio.get_running_loop().time()

            def advance(count: int) -> None:
                done = bar.tasks[0].completed + count
                elapsed = max(1e-6, asyncio.get_running_loop().time() - started)
                bar.update(task, completed=done, rate=f"{done / elapsed:,.0f}")

            return await rebuild.run(scope, verify, advance, topic, heads)


async def run_import_legacy(settings: Settings, messages_table: str | None, sessions_table: str | None) -> Any:
    from agentstream.streams.legacy import import_legacy

    async with dynamodb_client(settings) as ddb:
        store = EventStore(ddb, settings.tables.events, head_cache=10_000)  # the import appends in runs per stream
        return await import_legacy(partial(scan_all, ddb), store, messages_table or settings.tables.messages,
                                   sessions_table or settings.tables.sessions)


async def run_explain(settings: Settings, event_id: str) -> Any:
    async with dynamodb_client(settings) as ddb:
        return await new_explainer(ddb, settings).explain(event_id)


async def run_selfcheck(settings: Settings, business_id: str, keep: bool = False) -> Any:
    """The seed's sessions-and-messages check (streams/selfcheck.py) on the configured tables."""
    async with dynamodb_client(settings) as ddb:
        return await selfcheck_on(ddb, settings, business_id, keep)


async def selfcheck_on(ddb: Any, settings: Settings, business_id: str = "demo-salon", keep: bool = False) -> Any:
    """The sessions-and-messages check on the tables `ddb` reaches."""
    active = partial(get_active_session_for_user, ddb, settings.tables)
    return await check_sessions_and_messages(forget_stores(ddb, settings), active, settings, business_id, keep)


async def run_forget(settings: Settings, business_id: str, user_id: str) -> Any:
    from agentstream.streams.forget import forget

    async with dynamodb_client(settings) as ddb, s3_client(settings) as s3:
        return await forget(forget_stores(ddb, settings), settings, business_id, user_id,
                            media=MediaBucket(s3, settings.media.bucket))


async def run_forget_with_receipt(settings: Settings, business_id: str, user_id: str) -> Any:
    """`forget --proof`: erase the customer; the report and the signed receipt."""
    from agentstream.streams.erasure import forget_with_receipt

    async with dynamodb_client(settings) as ddb, s3_client(settings) as s3:
        return await forget_with_receipt(forget_stores(ddb, settings), kafka_clients(settings), settings, business_id, user_id,
                                         media=MediaBucket(s3, settings.media.bucket))


async def run_status(settings: Settings) -> dict[str, Any]:
    """`status`: the figures of Kafka, the bridge's leases, Gmail watches and handoff webhooks."""
    async with dynamodb_client(settings) as ddb:
        try:
            credentials: CredentialStore | None = credential_store(ddb, settings)
        except CredentialsError:
            credentials = None
        status = await collect(kafka_clients(settings), watched(settings), lease_table(ddb, settings.tables.leases, "status"),
                               credentials)
        directory = BusinessDirectory(ddb, settings.tables)
        meter = SpendMeter(UsageStore(ddb, settings.tables.usage, settings.tables.events))
        status["spend"] = await month_spend(await business_ids(ddb, settings.tables.business_info), meter, directory.info)
        return status


async def run_list_skipped(settings: Settings, business: str | None) -> list[Any]:
    """`dlq list`: the skipped events of one business, or of all."""
    from agentstream.adapters.dynamo.dead_letters import business_ids
    from agentstream.streams.dead_letters import skipped_events

    async with dynamodb_client(settings) as ddb:
        store, index = EventStore(ddb, settings.tables.events), DeadLetterIndex(ddb, settings.tables.events)
        businesses = [business] if business else await business_ids(ddb, settings.tables.business_info)
        return await skipped_events(store, index, businesses)


async def run_retry_skipped(settings: Settings, business: str | None, event_id: str | None, wait_s: float = 0.0) -> list[Any]:
    """`dlq retry`: revoke the skips (one event's, or all in scope) and wait up to `wait_s` for
    what the worker made of each."""
    from agentstream.adapters.dynamo.dead_letters import business_ids
    from agentstream.streams.dead_letters import retry_skips

    async with dynamodb_client(settings) as ddb:
        store, index = EventStore(ddb, settings.tables.events), DeadLetterIndex(ddb, settings.tables.events)
        if event_id:
            event = await store.by_id(event_id)
            businesses = [event.businessId] if event else []
        else:
            businesses = [business] if business else await business_ids(ddb, settings.tables.business_info)
        return await retry_skips(store, index, ProjectionStore(ddb, settings.tables), PROJECTIONS, businesses, event_id, wait_s)


async def run_with_credentials(settings: Settings, work: Callable[[CredentialStore], Awaitable[T]]) -> T:
    """A `credentials` command's `work` on the business credentials store."""
    async with dynamodb_client(settings) as ddb:
        return await work(credential_store(ddb, settings))


@asynccontextmanager
async def shadow_clients(settings: Settings) -> AsyncIterator[tuple[ShadowStores, Any]]:
    """`shadow`'s stores and started producer, once its topic is known to exist."""
    from agentstream.streams.shadow import ShadowError

    topic = settings.topic_shadow
    if not (await kafka.partitions_of(settings.kafka_bootstrap_servers, [topic])).get(topic):
        raise ShadowError(f"topic {topic} does not exist: run `agentstream setup`")
    async with AsyncExitStack() as stack:
        producer = await _started_producer(stack, settings)
        yield shadow_stores(await stack.enter_async_context(dynamodb_client(settings)), settings), producer


def media_source_of(credentials: CredentialStore, settings: Settings) -> Any:
    """Where a file of an inbound is: its provider's credentials and API base (from the registry)."""
    from agentstream.adapters.channels.registry import provider
    from agentstream.adapters.media_fetch import PROVIDER_OF, Source, gmail_creds

    gmail = GmailAuth(credentials, settings.google_token_uri)  # an hour-long token: refreshed before it is used

    async def source_of(inbound: Any, attachment: Any) -> Source:
        name = PROVIDER_OF.get(str(attachment.get("source")))
        if name is None:
            return Source(attachment, {}, "")
        spec = provider(name)
        base = spec.base_url.resolve(settings) if spec.base_url else ""
        creds = await (gmail_creds(gmail, inbound.businessId) if name == "gmail" else credentials.get(inbound.businessId, name))
        return Source(attachment, creds, base)

    return source_of


def transcriber_of(settings: Settings) -> Any:
    """The transcription client (TRANSCRIBE_BASE_URL / TRANSCRIBE_API_KEY, else OpenAI's own), or None without a key."""
    import openai

    from agentstream.adapters.transcriber import Transcriber

    key = settings.media.transcribe_api_key or settings.openai_api_key
    if not key:
        return None
    client = openai.AsyncOpenAI(api_key=key, base_url=settings.media.transcribe_base_url or settings.openai_base_url,
                                timeout=settings.openai_timeout_s, max_retries=0)
    return Transcriber(client, settings.media.transcribe_model)


async def run_media(settings: Settings, stop: asyncio.Event) -> None:
    """`agentstream media`: customers' files fetched, kept and transcribed; one of any number in `MEDIA_GROUP`."""
    from agentstream.adapters.media_fetch import fetch
    from agentstream.retry import RetryPolicy
    from agentstream.streams.media import MediaFetcher, media_runner

    async with AsyncExitStack() as stack:
        ddb = await stack.enter_async_context(dynamodb_client(settings))
        s3 = await stack.enter_async_context(s3_client(settings))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=settings.media.download_timeout_s))
        producer = await _started_producer(stack, settings)
        transcriber = transcriber_of(settings)
        if transcriber is not None:
            stack.push_async_callback(transcriber.close)
        m = settings.media
        policy = RetryPolicy(attempts=m.attempts, wait_initial=m.retry_wait_s, wait_max=m.retry_wait_s * 8,
                             timeout=m.attempts * (m.download_timeout_s + m.retry_wait_s * 8))
        fetcher = MediaFetcher(EventStore(ddb, settings.tables.events), MediaBucket(s3, m.bucket),
                               lambda source, limit: fetch(http, source, limit),
                               media_source_of(credential_store(ddb, settings), settings), m, transcriber, policy)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=m.group,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    metadata_max_age_ms=kafka.METADATA_MAX_AGE_MS)
        runner = media_runner(consumer, fetcher, Dlq(producer, settings.topic_dlq))
        consumer.subscribe([settings.topic_events], listener=runner.listener())
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        log.info("media.started", topic=settings.topic_events, group=m.group, transcribes=transcriber is not None)
        task = asyncio.create_task(runner.run(stop))
        await asyncio.gather(task, return_exceptions=True)
        log.info("media.stopped")
    _exit_if_died("media", task)
