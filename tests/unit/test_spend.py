"""The spend ceiling on the in-memory stores: prices, the month in the business's time zone, the
month's total kept exact by the appends that spent, the owner told once at 80 % and at 100 %,
and past the budget every conversation handed to a person with a notice, for good."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentstream.adapters.llm import Answer
from agentstream.adapters.memory_stores import MemoryDirectory, MemoryEventStore, MemoryProjectionStore, MemoryTables
from agentstream.adapters.memory_usage import MemoryUsage
from agentstream.events import Event, new_event, parse_event
from agentstream.projections.context import ReplyContext
from agentstream.projections.handoff import handoff_of
from agentstream.settings import Tables
from agentstream.streams.clock import FakeClock
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.spend import (
    BUDGET_MODEL, BUILT_IN, PriceError, PriceTable, SpendMeter, Verdict, budget_micros, month_of, month_totals,
)

AT = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)
PRICES = PriceTable.parse('{"fake": [1000, 2000]}')  # micro-USD per token: 1 000 in, 2 000 out


def test_prices_come_from_the_table_over_the_built_in_one_and_bad_ones_are_refused() -> None:
    assert PRICES.cost("fake", 3, 1) == 5_000 and PRICES.price("gpt-4o-mini") == BUILT_IN.price("gpt-4o-mini")
    assert BUILT_IN.cost("gpt-4o-mini", 1, 0) == 1, "a fraction of a micro-USD is rounded up"
    assert BUILT_IN.price("a-model-nobody-priced") == BUILT_IN.price("*")
    assert BUILT_IN.price("gpt-4o-mini-2024-07-18") == (0.15, 0.60), "a dated model is priced as its family"
    assert PriceTable.parse('{"m": {"input": 1, "output": 2}}').price("m") == (1.0, 2.0), "shadow's form too"
    for bad in ('{"m": [1]}', '{"m": [-1, 2]}', '["m"]', "not json", '{"m": ["1", 2]}'):
        with pytest.raises(PriceError):
            PriceTable.parse(bad)


def test_the_month_is_the_business_s_own() -> None:
    new_year_in_bucharest = datetime(2026, 12, 31, 22, 30, tzinfo=timezone.utc)
    assert month_of(new_year_in_bucharest, "Europe/Bucharest") == "2027-01"
    assert month_of(new_year_in_bucharest, "UTC") == "2026-12" and month_of(new_year_in_bucharest, "Nowhere/Else") == "2026-12"


def test_budget_and_verdicts() -> None:
    assert budget_micros({"settings": {"monthlyBudgetUsd": 2.5}}) == 2_500_000
    assert budget_micros({}) is None and budget_micros({"settings": {"monthlyBudgetUsd": "10"}}) is None
    assert [Verdict("2026-12", s, 100).state for s in (0, 79, 80, 99, 100, 250)] == ["ok", "ok", "warn", "warn", "spent", "spent"]
    assert Verdict("2026-12", 10**9, None).state == "none"


@given(st.lists(st.tuples(st.integers(0, 5_000), st.integers(0, 5_000), st.integers(0, 24 * 62)), max_size=30))
def test_a_replay_s_totals_are_the_sum_of_what_each_event_added(calls: list[tuple[int, int, int]]) -> None:
    events = [reply_with(p, c, AT + timedelta(hours=h)) for p, c, h in calls]
    info = {"timezone": "Europe/Bucharest", "settings": {"modelPrices": {"fake": [1000, 2000]}}}
    totals = month_totals(events, info)
    expected: dict[str, int] = {}
    for p, c, h in calls:
        if p or c:
            month = month_of(AT + timedelta(hours=h), "Europe/Bucharest")
            expected[month] = expected.get(month, 0) + PRICES.cost("fake", p, c)
    assert totals == expected


def test_old_handoffs_and_extractions_are_upcast() -> None:
    base = {"eventId": "e", "streamId": "b#u", "seq": 1, "schemaVersion": 1, "occurredAt": "2026-12-07T10:00:00Z",
            "businessId": "b", "userId": "u", "channel": "system"}
    handoff = parse_event(base | {"type": "HandoffRequested", "payload": {"sessionId": "s", "by": "owner"}})
    assert handoff.schemaVersion == 2 and handoff.payload.by == "owner"
    facts = parse_event(base | {"type": "FactsExtracted", "payload": {"facts": [], "model": "m", "sourceEventId": "x"}})
    assert facts.schemaVersion == 2 and facts.payload.usage.promptTokens == 0


def test_a_budget_handoff_does_not_time_out() -> None:
    at = "2026-12-07T10:00:00.000Z"
    budget = {"handoff": {"by": "system", "reason": "budget", "since": at, "lastActivityAt": at, "seq": 3}}
    owner = {"handoff": {**budget["handoff"], "by": "owner", "reason": "VIP"}}
    later = AT + timedelta(days=3)
    assert handoff_of(budget, later, 120) is not None and handoff_of(owner, later, 120) is None


@dataclass
class UsageResponder:
    """A model that reports `prompt` and `completion` tokens a call, for model `fake`."""

    prompt: int = 3
    completion: int = 1
    calls: int = 0

    async def answer(self, ctx: ReplyContext) -> Answer:
        self.calls += 1
        return Answer(f"re: {ctx.message}", "fake", 1, self.prompt, self.completion)

    async def close(self) -> None:
        pass


@dataclass
class Shop:
    budget_usd: float
    responder: UsageResponder = field(default_factory=UsageResponder)
    told: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = MemoryTables(Tables())
        self.store, self.states = MemoryEventStore(self.db), MemoryProjectionStore(self.db)
        self.usage = MemoryUsage(self.db)
        self.info = {"businessId": "b", "timezone": "Europe/Bucharest",
                     "settings": {"monthlyBudgetUsd": self.budget_usd, "modelPrices": {"fake": [1000, 2000]},
                                  "sessionIdleMinutes": 600}}
        self.clock = FakeClock(AT)

        async def warn(business: str, payload: dict[str, Any]) -> None:
            self.told.append(payload)

        async def publish(reply: Event, first: bool = False) -> None:
            pass

        self.meter = SpendMeter(self.usage, BUILT_IN, warn)
        self.processor = ConversationProcessor(self.store, self.states, MemoryDirectory({"b": self.info}), self.responder,
                                               publish, clock=self.clock, spend=self.meter)

    async def say(self, user: str, text: str) -> None:
        event = new_event("MessageReceived", business_id="b", user_id=user, channel="websocket",
                          payload={"content": text}, occurred_at=self.clock.now())
        await self.store.append(event)
        seen = 0
        while events := await self.store.read(f"b#{user}", after_seq=seen):
            for e in events:
                await self.processor.handle(e)
            seen = events[-1].seq

    async def spent(self) -> int:
        return await self.usage.spent("b", "2026-12")


def reply_with(prompt: int, completion: int, at: datetime) -> Event:
    return new_event("ReplyGenerated", business_id="b", user_id="u", channel="websocket", occurred_at=at,
                     payload={"content": "x", "inReplyTo": "i", "sessionId": "s", "model": "fake",
                              "usage": {"promptTokens": prompt, "completionTokens": completion}})


async def test_past_the_budget_each_conversation_is_told_and_handed_off_for_good() -> None:
    shop = Shop(budget_usd=0.025)  # 5 000 micro-USD a turn: five turns fit; the fifth call is made at 80 %
    for n in range(5):
        await shop.say(f"u{n}", "Aveți loc mâine?")
    assert await shop.spent() == 25_000 and shop.responder.calls == 5
    assert [(t["type"], t["percent"]) for t in shop.told] == [("BudgetWarning", 80.0)]
    await shop.say("u0", "și poimâine?")
    await shop.say("u5", "Bună ziua")
    assert shop.responder.calls == 5, "no model call past the budget"
    assert [t["type"] for t in shop.told] == ["BudgetWarning", "BudgetSpent"]
    for user in ("u0", "u5"):
        events = await shop.store.read(f"b#{user}")
        last_reply = [e for e in events if e.type == "ReplyGenerated"][-1]
        handoff = events[-1]
        assert last_reply.payload.model == BUDGET_MODEL and "coleg" in last_reply.payload.content
        assert (handoff.type, handoff.payload.by, handoff.payload.reason) == ("HandoffRequested", "system", "budget")
    shop.clock.advance(timedelta(hours=5))  # past the handoff timeout (120 min), in the session: still with a person
    await shop.say("u5", "alo?")
    events = await shop.store.read("b#u5")
    assert events[-1].type == "MessageReceived" and shop.responder.calls == 5
    assert await shop.spent() == 25_000, "the notices spent nothing"


async def test_a_replayed_total_and_a_spend_counted_alone() -> None:
    shop = Shop(budget_usd=10)
    for n in range(3):
        await shop.say(f"u{n}", "salut")
    logged = [e for n in range(3) for e in await shop.store.read(f"b#u{n}")]
    assert month_totals(logged, shop.info) == {"2026-12": await shop.spent()}
    await shop.usage.set_spent("b", "2026-12", 7)
    assert await shop.spent() == 7
    added = await shop.meter.charge_alone("b", shop.info, AT, "fake", 1, 0, key="draft-1")
    again = await shop.meter.charge_alone("b", shop.info, AT, "fake", 1, 0, key="draft-1")
    assert (added, again, await shop.spent()) == (1000, 0, 1007)


@dataclass
class FakeOwner:
    """The owner service's list and release, over rows of the conversations list."""

    rows: list[dict[str, Any]]
    released: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (session, by)

    async def conversations(self, business_id: str, status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == status]

    async def release(self, session: dict[str, Any], reason: str, by: str = "owner", key: str | None = None) -> dict[str, Any]:
        duplicate = key in self.released
        self.released.setdefault(key or "", (session["sessionId"], by))
        return {"duplicate": duplicate}


async def test_budget_handoffs_are_released_once_there_is_budget_again_and_no_others() -> None:
    from agentstream.streams.spend_release import BudgetReleaser

    shop = Shop(budget_usd=0.005)
    await shop.say("u0", "salut")  # one turn spends the budget
    await shop.say("u1", "salut")  # told, handed off; the month is marked spent
    budget = {"by": "system", "reason": "budget", "seq": 4}
    owner = FakeOwner([{"sessionId": "s1", "userId": "u1", "status": "waiting", "handoff": budget},
                       {"sessionId": "s2", "userId": "u2", "status": "human", "handoff": {**budget, "seq": 9}},
                       {"sessionId": "s3", "userId": "u3", "status": "waiting", "handoff": {"by": "owner", "reason": "budget"}}])
    info = {"b": shop.info}

    async def info_of(business: str) -> dict[str, Any] | None:
        return info[business]

    releaser = BudgetReleaser(shop.usage, shop.meter, owner, info_of)
    assert await releaser.round() == 0 and owner.released == {}, "no room yet: nothing released"
    info["b"] = shop.info | {"settings": {**shop.info["settings"], "monthlyBudgetUsd": 1}}
    assert await releaser.round() == 2
    assert sorted(owner.released.values()) == [("s1", "system"), ("s2", "system")]
    assert await releaser.round() == 0, "the month's mark is cleared: nothing more to look at"


def test_status_says_where_the_month_stands() -> None:
    from agentstream.streams.spend_release import describe_spend

    def row(spent: int, budget: int | None) -> dict[str, Any]:
        return {"business": "b", **Verdict("2026-12", spent, budget).view()}

    assert describe_spend(row(1_234_500, None)) == "2026-12: $1.2345 (no budget)"
    assert describe_spend(row(10_000_000, 50_000_000)) == "2026-12: $10.0000 of $50.00 (20.0 %)"
    assert describe_spend(row(40_000_000, 50_000_000)).endswith("(80.0 %): 80 % reached, the owner was told")
    assert describe_spend(row(51_000_000, 50_000_000)).endswith("(102.0 %): SPENT, new conversations go to a person")


def test_the_inbox_list_says_the_month_s_spend() -> None:
    from agentstream.adapters.http.inbox_routes import _page
    from agentstream.adapters.http.inbox_session import InboxSession
    from agentstream.adapters.http.owner_service import STATUSES

    session = InboxSession("tok", "b", "Ana", "k")

    def page(spend: dict[str, Any] | None) -> str:
        return _page("inbox_list.html", session=session, rows=[], wanted=None, statuses=STATUSES, spend=spend).body.decode()

    assert 'id="spend"' not in page(None)
    assert "Model spend in 2026-12: $12.00 of $50.00 (24.0 %)" in page(Verdict("2026-12", 12_000_000, 50_000_000).view())
    spent = page(Verdict("2026-12", 50_000_000, 50_000_000).view())
    assert 'class="spend spent"' in spent and "new conversations are handed to you" in spent
