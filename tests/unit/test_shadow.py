"""Shadow replay without services: the hard cap on model calls under concurrency, the bound on
inbounds in flight, the candidate's instructions, what goes to the topic, the report (both
replies side by side, costs, escaping) and the command's option checks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentstream.adapters.llm import Answer
from agentstream.projections.context import ReplyContext
from agentstream.projections.conversation import empty_memory
from agentstream.projections.timecontext import time_context
from agentstream.shadow_cli import read_options
from agentstream.streams.explain import NotExplainable
from agentstream.streams.shadow import (ASKED, DEFAULT_PRICES, FAILED, HANDOFF_NOTICE, NOT_ASKED, CallBudget, Inbound, Pair, Rebuilt,
                                        Shadow, ShadowError, Side, cost_usd, parse_prices, price_of)
from agentstream.streams.shadow_report import build_report, render_html, write_report

SCRIPT = "<script>alert('x')</script>"


def inbound(n: int, text: str | None = None) -> Inbound:
    return Inbound(f"in-{n}", f"b#u{n}", 1, f"2026-11-24T08:{n:02d}:00.000Z", text or f"message {n}")


def old_side(n: int, model: str = "gpt-4o-mini") -> Side:
    return Side(f"old reply {n}", model, 900, False, 100, 20, cost_usd(model, 100, 20, DEFAULT_PRICES), f"reply-{n}")


async def rebuild(i: Inbound) -> Rebuilt:
    ctx = ReplyContext(business={"name": "Salon"}, system_instructions="Old instructions.", rag_entries=[],
                       memory=empty_memory("b", "u"), time=time_context(datetime(2026, 11, 24, 8, tzinfo=timezone.utc), "UTC", {}),
                       message=i.content, inbound_event_id=i.eventId)
    await asyncio.sleep(0)
    return Rebuilt(ctx, old_side(int(i.eventId.split("-")[1])), True, [])


class SlowModel:
    """Answers after a few turns of the loop; records calls, the contexts and the most in flight."""

    def __init__(self) -> None:
        self.contexts: list[ReplyContext] = []
        self.in_flight = self.most_in_flight = 0

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.contexts.append(ctx)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return Answer(f"new reply to {ctx.message}", "local-model", 12, prompt_tokens=50, completion_tokens=10)

    async def close(self) -> None:
        """Nothing to release."""


def test_the_budget_gives_exactly_its_limit() -> None:
    budget = CallBudget(3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False] and budget.taken == 3 and budget.spent
    assert not CallBudget(0).take()
    unlimited = CallBudget(None)
    assert all(unlimited.take() for _ in range(1000)) and not unlimited.spent


@pytest.mark.parametrize("concurrency,max_calls", [(1, 5), (8, 5), (20, 1), (20, 0), (3, 7)])
async def test_max_calls_is_never_exceeded_whatever_the_concurrency(concurrency: int, max_calls: int) -> None:
    model, sent = SlowModel(), []

    async def sink(pair: Pair) -> None:
        sent.append(pair)

    pairs = await Shadow(rebuild, model, CallBudget(max_calls), DEFAULT_PRICES, concurrency=concurrency, sink=sink).run(
        [inbound(n) for n in range(20)])
    assert len(model.contexts) == max_calls
    assert [p.inbound.eventId for p in pairs] == [f"in-{n}" for n in range(20)]  # the order given
    assert sum(p.status == ASKED for p in pairs) == max_calls and sum(p.status == NOT_ASKED for p in pairs) == 20 - max_calls
    assert all(p.new is None for p in pairs if p.status == NOT_ASKED)
    assert sorted(p.inbound.eventId for p in sent) == sorted(p.inbound.eventId for p in pairs if p.status == ASKED)


async def test_no_more_inbounds_are_in_flight_than_the_concurrency() -> None:
    model, done = SlowModel(), []
    pairs = await Shadow(rebuild, model, CallBudget(None), DEFAULT_PRICES, concurrency=3).run(
        [inbound(n) for n in range(12)], done.append)
    assert model.most_in_flight == 3 and len(model.contexts) == 12 and sum(done) == 12
    assert all(p.status == ASKED and p.new and p.new.content == f"new reply to message {n}" for n, p in enumerate(pairs))


async def test_the_candidate_instructions_replace_the_logged_ones_and_nothing_else() -> None:
    model = SlowModel()
    await Shadow(rebuild, model, CallBudget(None), DEFAULT_PRICES, instructions="Be very brief.").run([inbound(1)])
    assert model.contexts[0].system_instructions == "Be very brief." and model.contexts[0].message == "message 1"
    same = SlowModel()
    await Shadow(rebuild, same, CallBudget(None), DEFAULT_PRICES).run([inbound(1)])
    assert same.contexts[0].system_instructions == "Old instructions."


async def test_an_inbound_that_cannot_be_rebuilt_uses_no_call() -> None:
    async def broken(i: Inbound) -> Rebuilt:
        if i.eventId == "in-0":
            raise NotExplainable("the message 'in-0' has no reply in the log")
        return await rebuild(i)

    model = SlowModel()
    pairs = await Shadow(broken, model, CallBudget(1), DEFAULT_PRICES, concurrency=1).run([inbound(0), inbound(1)])
    assert [p.status for p in pairs] == [FAILED, ASKED] and len(model.contexts) == 1
    assert "no reply in the log" in pairs[0].detail


async def test_a_handoff_notice_is_not_compared_and_uses_no_call() -> None:
    async def notice(i: Inbound) -> Rebuilt:
        rebuilt = await rebuild(i)
        return replace(rebuilt, old=replace(rebuilt.old, model="handoff")) if i.eventId == "in-0" else rebuilt

    model = SlowModel()
    pairs = await Shadow(notice, model, CallBudget(1), DEFAULT_PRICES, concurrency=1).run([inbound(0), inbound(1)])
    assert [p.status for p in pairs] == [HANDOFF_NOTICE, ASKED] and len(model.contexts) == 1
    assert _report(pairs)["summary"]["handoffNotices"] == 1


def test_prices_by_model_and_dated_versions_and_unknown() -> None:
    assert price_of("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]  # not gpt-4o's
    assert price_of("gpt-4o-2024-08-06", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o"]
    assert price_of("local-model", DEFAULT_PRICES) is None and cost_usd("local-model", 10, 10, DEFAULT_PRICES) is None
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000, DEFAULT_PRICES) == pytest.approx(0.75)
    assert parse_prices({"local-model": {"input": 1, "output": "2.5"}}) == {"local-model": (1.0, 2.5)}
    for bad in ([], {"m": {"input": 1}}, {"m": {"input": "x", "output": 1}}, {"m": {"input": -1, "output": 1}}):
        with pytest.raises(ShadowError):
            parse_prices(bad)


def _report(pairs: list[Pair]) -> dict:
    meta = {"runId": "run-1", "business": "demo<b>", "topic": "agent.shadow.v1", "startedAt": "2026-12-01T10:00:00.000Z",
            "since": None, "limit": 10, "maxCalls": 2, "concurrency": 4,
            "candidate": {"model": "local-model", "instructionsFile": "new.txt", "instructionsSha256": "ab",
                          "instructions": "Never write </pre><script>x</script>"}, "notes": []}
    return build_report(meta, pairs)


def _pairs() -> list[Pair]:
    new = Side(f"new {SCRIPT} & more", "local-model", 40, True, 70, 9, None)
    return [Pair(inbound(1, f"hi {SCRIPT}"), ASKED, Side(f"old {SCRIPT}", "gpt-4o-mini", 900, False, 100, 20,
                                                         cost_usd("gpt-4o-mini", 100, 20, DEFAULT_PRICES)), new, True),
            Pair(inbound(2), ASKED, old_side(2), Side("new two", "local-model", 60, False, 80, 5, None), False, "rag: differs"),
            Pair(inbound(3), NOT_ASKED)]


def test_the_report_shows_both_replies_side_by_side_escaped() -> None:
    page = render_html(_report(_pairs()))
    assert "<script>" not in page and "</pre><script>" not in page
    assert "hi &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "old &lt;script&gt;" in page and "new &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert page.index("old &lt;script&gt;") < page.index("new &lt;script&gt;")  # old column first, same row
    assert "demo&lt;b&gt;" in page and "fallback" in page and "context not reproduced" in page and "rag: differs" in page
    assert "unknown" in page  # the candidate's price is not known
    assert page.count("<tr><td><div class=\"text\">") == 3


def test_the_report_summary_counts_only_asked_pairs() -> None:
    s = _report(_pairs())["summary"]
    assert (s["inbounds"], s["asked"], s["notAsked"], s["notRebuilt"], s["reproduced"]) == (3, 2, 1, 0, 1)
    assert s["old"]["replies"] == 2 and s["old"]["fallbacks"] == 0 and s["new"]["fallbacks"] == 1
    assert s["new"]["promptTokens"] == 150 and s["new"]["completionTokens"] == 14 and s["new"]["meanLatencyMs"] == 50
    assert s["new"]["costUsd"] is None and s["new"]["costUnknown"] == 2
    assert s["old"]["costUsd"] == pytest.approx(2 * (100 * 0.15 + 20 * 0.60) / 1e6) and s["old"]["costUnknown"] == 0
    assert s["new"]["meanLength"] == (len(f"new {SCRIPT} & more") + len("new two")) / 2


def test_the_report_is_written_as_html_and_json_with_one_basename(tmp_path: Path) -> None:
    html_path, json_path = write_report(tmp_path / "try.html", _report(_pairs()))
    assert (html_path.name, json_path.name) == ("try.html", "try.json")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["pairs"][0]["inbound"]["content"] == f"hi {SCRIPT}"  # JSON keeps the text as it was
    assert data["pairs"][0]["old"]["length"] == len(f"old {SCRIPT}") and data["pairs"][2]["new"] is None
    assert "&lt;script&gt;" in html_path.read_text(encoding="utf-8")


def test_wrong_options_are_one_line_errors(tmp_path: Path) -> None:
    ok = {"business": "demo-salon", "since": None, "limit": 10, "model": None, "instructions": None, "max_calls": None,
          "concurrency": 4, "prices": None, "out": tmp_path / "r.html"}
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "prices.json").write_text('{"local-model": {"input": 1}}')
    cases = {"business": None, "limit": 0, "max_calls": -1, "concurrency": 0, "since": "yesterday",
             "instructions": tmp_path / "missing.txt", "prices": tmp_path / "prices.json", "out": tmp_path / "no" / "r.html"}
    for option, value in cases.items():
        with pytest.raises(ShadowError) as caught:
            read_options(**(ok | {option: value}))
        assert "\n" not in str(caught.value)
    with pytest.raises(ShadowError, match="is empty"):
        read_options(**(ok | {"instructions": tmp_path / "empty.txt"}))
    options = read_options(**(ok | {"since": "2026-11-01", "max_calls": 0}))
    assert options.since == datetime(2026, 11, 1, tzinfo=timezone.utc) and options.max_calls == 0
