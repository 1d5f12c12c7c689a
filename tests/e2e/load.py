"""The load the kill tests share: several of every process (3 gateways behind a round-robin proxy,
3 workers, 2 delivery processes, 2 bridges), the fake model in a process of its own, and customers
who write through the public port: widget customers on sockets (reconnecting through the proxy when
their gateway dies) and Twilio customers by signed webhook. The fake model quotes each message's
mark, so each Twilio request names the message it answers. `check` asserts what a customer would
see: every inbound answered exactly once in the log, each reply delivered in order (widget frames
per socket, Twilio sends), and a text sent twice only in the named window (first sent in the moment
before a kill or a restart: the vendor accepted it, ReplyDelivered was not written yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from twilio.request_validator import RequestValidator

from agentstream.local.services import LocalHome, Process, free_port, spawn, wait_for_port
from agentstream.stack import spawn_component, wait_http
from tests.conftest import isolated_env
from tests.e2e.stack import log_events, prepare, run_sync, set_credentials
from tests.fakes.vendors import VendorServer
from tests.services import Endpoints

COUNTS = {"gateway": 3, "worker": 3, "delivery": 2, "bridge": 2}
PER_CUSTOMER = 10
TWILIO = {"accountSid": "AC123", "authToken": "twilio-token-1", "fromNumber": "+40700000000"}
WINDOW_S = 3.0  # a send-to-record window wider than this (one DynamoDB write) fails the test
QUOTED = re.compile(r"\[(m-[0-9a-f]+-\d+)\]")  # the message's own mark, quoted back by the fake model


@dataclass
class Cluster:
    env: dict[str, str]
    port: int  # the proxy's
    logs: Path
    gateway_ports: dict[str, int] = field(default_factory=dict)  # a restarted gateway keeps its port
    processes: dict[str, Process] = field(default_factory=dict)
    kills: list[str] = field(default_factory=list)
    killed_at: dict[str, float] = field(default_factory=dict)  # wall clock of each kill -9

    def start(self, name: str) -> None:
        kind = name.rsplit("-", 1)[0]
        env = self.env | ({"GATEWAY_PORT_HTTP": str(self.gateway_ports[name])} if kind == "gateway" else {})
        self.processes[name] = spawn_component(name, env, self.logs, ("-m", "agentstream.cli", kind))

    def kill_and_restart(self, name: str) -> None:
        self.killed_at[name] = time.time()
        os.kill(self.processes[name].popen.pid, signal.SIGKILL)
        self.processes[name].popen.wait()
        self.kills.append(name)
        self.start(name)

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.stop()


@contextlib.contextmanager
def load_cluster(endpoints: Endpoints, tmp_path: Path) -> Iterator[tuple[Cluster, VendorServer]]:
    """COUNTS of each process on `endpoints` behind one public port, demo-salon's Twilio set, and
    the fake model in a process of its own (in this one, the load's customers starve it: a model
    that times out hands the conversation to a person, and the AI rightly goes quiet)."""
    with VendorServer() as vendors:
        port, model_port = free_port(), free_port()
        env = isolated_env(endpoints, **vendors.env()) | {
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1", "OPENAI_TIMEOUT": "120", "BENCH_MODEL_PORT": str(model_port)}
        prepare(env)
        set_credentials(env, "demo-salon", "twilio", TWILIO)
        # each port of its own (not port + i, which a concurrent run's free port can take)
        running = Cluster(env, port, tmp_path, {f"gateway-{i}": free_port() for i in range(1, COUNTS["gateway"] + 1)})
        running.processes["model"] = spawn("model", [sys.executable, "-m", "agentstream.cli", "bench", "model-server"],
                                           tmp_path / "model.log", env=env)
        try:
            for kind, n in COUNTS.items():
                for i in range(1, n + 1):
                    running.start(f"{kind}-{i}")
            backends = [str(p) for p in running.gateway_ports.values()]
            running.processes["proxy"] = spawn("proxy", [sys.executable, "-m", "agentstream.local.proxy", str(port), *backends],
                                               tmp_path / "proxy.log", env=env)
            for p in [port, *map(int, backends)]:
                wait_http(p, timeout=120)
            wait_for_port(running.processes["model"], model_port, timeout=60)
            _wait_workers_joined(running)
            yield running, vendors
        finally:
            running.stop()


def _wait_workers_joined(running: Cluster, timeout: float = 180.0) -> None:
    """Until every worker has joined its group (its log says worker.started): a load, or a broker
    killed, before that would meet a worker still starting, which a supervisor would restart."""
    deadline = time.monotonic() + timeout
    names = [f"worker-{i}" for i in range(1, COUNTS["worker"] + 1)]
    while not all("worker.started" in (running.logs / f"{n}.log").read_text(errors="replace") for n in names):
        assert time.monotonic() < deadline, "a worker did not join its group within 3 minutes"
        time.sleep(0.5)


@dataclass
class Widget:
    """One widget customer: its marks in sending order and the reply frames each socket got."""

    marks: list[str] = field(default_factory=list)
    user: str = ""
    acked: dict[str, str] = field(default_factory=dict)  # mark → inbound eventId
    sockets: list[list[dict]] = field(default_factory=list)


async def _widget(port: int, n: int, spacing: float, deadline: float) -> Widget:
    me = Widget(marks=[f"m-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)])
    v = await _visitor(port)
    me.user = v["userId"]
    url = f"ws://127.0.0.1:{port}/ws/demo-salon?userId={v['userId']}&token={v['token']}"
    sent = 0
    while time.monotonic() < deadline:
        frames: list[dict] = []
        me.sockets.append(frames)
        try:
            async with websockets.connect(url + _cursor(me), open_timeout=20) as ws:
                for mark in me.marks:  # (re)send what has no ack yet: the same client id is one message
                    if mark in me.acked or me.marks.index(mark) >= sent:
                        continue
                    await ws.send(json.dumps({"type": "message", "text": f"Aveti loc maine? [{mark}]", "clientMessageId": mark}))
                while time.monotonic() < deadline:
                    if sent < n and len(me.acked) == sent:
                        await asyncio.sleep(spacing * random.uniform(0.5, 1.5))
                        await ws.send(json.dumps({"type": "message", "text": f"Aveti loc maine? [{me.marks[sent]}]",
                                                  "clientMessageId": me.marks[sent]}))
                        sent += 1
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except asyncio.TimeoutError:
                        frame = {}
                    if frame.get("type") == "ack":
                        me.acked[frame["clientMessageId"]] = frame["eventId"]
                    elif frame.get("type") == "reply":
                        frames.append(frame)
                    got = {f["inReplyTo"] for s in me.sockets for f in s}
                    if sent == n and set(me.acked.values()) <= got and len(me.acked) == n:
                        return me
        except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError):
            await asyncio.sleep(0.5)  # its gateway was killed: reconnect through the proxy
    return me


def _cursor(me: Widget) -> str:
    """The widget's catch-up cursor: its oldest acked message with no reply yet, else its last reply."""
    answered = {f["inReplyTo"] for s in me.sockets for f in s}
    awaiting = [me.acked[m] for m in me.marks if m in me.acked and me.acked[m] not in answered]
    last = next((f["eventId"] for s in reversed(me.sockets) for f in reversed(s)), None)
    after = awaiting[0] if awaiting else last
    return f"&after={after}" if after else ""


async def _visitor(port: int) -> dict:
    """A widget visitor's id and token; a gateway killed mid-request is asked again, as a browser would."""
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(20):
            try:
                resp = await http.post(f"http://127.0.0.1:{port}/v1/widget/demo-salon/visitors")
                if resp.status_code == 200:
                    return resp.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError("no visitor token after 20 tries")


async def _twilio(port: int, phone: str, n: int, spacing: float) -> list[str]:
    url = f"http://127.0.0.1:{port}/webhooks/twilio/demo-salon"
    marks = []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(n):
            mark = f"m-{uuid.uuid4().hex[:8]}-{i}"
            form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "To": TWILIO["fromNumber"],
                    "Body": f"Aveti loc maine? [{mark}]", "NumMedia": "0"}
            headers = {"X-Twilio-Signature": RequestValidator(TWILIO["authToken"]).compute_signature(url, form)}
            for _ in range(20):  # Twilio retries a webhook that failed; so does this customer
                try:
                    if (await http.post(url, data=form, headers=headers)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
            marks.append(mark)
            await asyncio.sleep(spacing * random.uniform(0.5, 1.5))
    return marks


@dataclass
class Services:
    """A Kafka and a ministack of the module's own, each restartable on its own data."""

    home: LocalHome
    data: Path
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    dynamo_port: int = field(default_factory=free_port)
    kafka: Process | None = None
    ministack: Process | None = None

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(f"127.0.0.1:{self.kafka_port}", f"http://127.0.0.1:{self.dynamo_port}")

    def start_kafka(self) -> None:
        self.kafka = self.home.start_kafka(self.kafka_port, self.controller_port, self.data / "kafka", heap="512m")

    def start_ministack(self) -> None:
        self.ministack = self.home.start_ministack(self.dynamo_port, state=self.data / "ministack")

    def kill_kafka(self) -> None:
        assert self.kafka is not None
        self.kafka.kill()  # SIGKILL to its process group: no clean shutdown

    def stop_ministack(self) -> None:
        assert self.ministack is not None
        self.ministack.stop(timeout=60)  # SIGTERM: it saves its state as it stops

    def stop(self) -> None:
        for proc in (self.kafka, self.ministack):
            if proc is not None:
                proc.stop()


@dataclass
class Load:
    """What the customers of one load sent and saw."""

    widgets: list[Widget]
    phones: list[str]
    texted: list[list[str]]  # each Twilio customer's marks, in sending order

    @property
    def marks(self) -> set[str]:
        return {m for marks in self.texted for m in marks}


def run_load(running: Cluster, total: int, during: Callable[[float], Awaitable[None]], slack_s: float) -> Load:
    """`total` messages (half from widget customers, half from Twilio customers, PER_CUSTOMER each,
    about 8 a second in all), with `during(seconds the load lasts)` run beside them."""
    customers = max(1, total // (2 * PER_CUSTOMER))
    spacing = customers * 2 / 8.0
    lasts = PER_CUSTOMER * spacing
    deadline = time.monotonic() + lasts * 1.5 + slack_s
    block = uuid.uuid4().int % 10_000  # phone numbers of this load's own: loads share the cluster
    phones = [f"+40{block:04d}{i:05d}" for i in range(customers)]

    async def load() -> Load:
        widgets = [asyncio.create_task(_widget(running.port, PER_CUSTOMER, spacing, deadline)) for _ in range(customers)]
        texts = [asyncio.create_task(_twilio(running.port, p, PER_CUSTOMER, spacing)) for p in phones]
        await during(lasts)
        return Load(await asyncio.gather(*widgets), phones, await asyncio.gather(*texts))

    return run_sync(load())


def texted_answered(vendors: VendorServer, marks: set[str]) -> bool:
    quoted = {q for r in vendors.state.sent("/Messages.json") for q in QUOTED.findall(r.form.get("Body", ""))}
    return marks <= quoted


def check(running: Cluster, vendors: VendorServer, load: Load, window_end: float, wait_s: float) -> int:
    """Every message of `load` answered once in the log and delivered in order; a text sent twice
    only if first sent in the WINDOW_S before `window_end` (a kill or a restart). The texts sent twice."""
    wait = time.monotonic() + wait_s
    while not texted_answered(vendors, load.marks) and time.monotonic() < wait:
        time.sleep(0.5)
    for stream in [w.user for w in load.widgets] + load.phones:  # the log
        _assert_one_reply_each(log_events(running.env, f"demo-salon#{stream}"))
    for w in load.widgets:  # the widget: every message acked, each reply once per socket, in order
        assert len(w.acked) == PER_CUSTOMER, f"unacknowledged messages: {set(w.marks) - set(w.acked)}"
        for frames in w.sockets:
            assert len({f["eventId"] for f in frames}) == len(frames), "a reply twice on one socket"
        first = list(dict.fromkeys(f["inReplyTo"] for s in w.sockets for f in s))
        expected = [w.acked[m] for m in w.marks]
        assert first == expected, f"{w.user}: replies missing {set(expected) - set(first)} or out of order"
    sends = [(marks[0], r.at) for r in vendors.state.sent("/Messages.json")
             if (marks := QUOTED.findall(r.form.get("Body", ""))) and marks[0] in load.marks]
    counts = Counter(mark for mark, _ in sends)
    for marks in load.texted:  # Twilio: every message answered, in order
        assert all(counts[m] >= 1 for m in marks), f"not sent: {[m for m in marks if not counts[m]]}"
        assert [m for m in dict.fromkeys(mark for mark, _ in sends) if m in set(marks)] == marks, "texts out of order"
    first_sent = {mark: at for mark, at in reversed(sends)}
    twice = sorted(m for m, c in counts.items() if c > 1)
    outside = [m for m in twice if not window_end - WINDOW_S <= first_sent[m] <= window_end]
    sends_of = {m: [round(at - window_end, 2) for mark, at in sends if mark == m] for m in twice}
    assert not outside, f"sent twice outside the window: {outside}; sends (s after its end): {sends_of}"
    assert all(c <= 2 for c in counts.values()), "a reply sent three times"
    return len(twice)


def _assert_one_reply_each(events: list) -> None:
    handoffs = [e.payload for e in events if e.type == "HandoffRequested"]
    assert not handoffs, f"{events[0].streamId} handed to a person (the model failed?): {handoffs}"
    inbound = [e.eventId for e in events if e.type == "MessageReceived"]
    replies = [e.payload.inReplyTo for e in events if e.type == "ReplyGenerated"]
    assert replies == inbound, "every inbound has exactly one reply, in the inbound's order"
