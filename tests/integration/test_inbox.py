"""The owner's inbox page (GET /inbox) on the gateway served in the test's loop over the real
local DynamoDB server; the worker's processor (world.py) folds what the page appends."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from agentstream.bootstrap import demo_credentials, populate, setup
from agentstream.adapters.http.inbox_session import COOKIE
from agentstream.events import Event, stream_id
from agentstream.wiring import gateway_deps
from tests.conftest import isolated_env, settings_from
from tests.integration.test_gateway_auth import RESTAURANT, SALON, Gateway, _serve
from tests.integration.test_handoff_routes import Owner, replied_to
from tests.integration.world import CountingResponder, World, drain, new_processor
from tests.services import Endpoints

HOSTILE = "<script>alert('x')</script> '; DROP TABLE sessions;-- & <b>bold</b>"


@pytest.fixture(scope="module")
async def owner(endpoints: Endpoints) -> AsyncIterator[Owner]:
    with pytest.MonkeyPatch.context() as mp:  # every test signs in from 127.0.0.1: the limits are tested elsewhere
        settings = settings_from(isolated_env(endpoints, LIMIT_SIGN_IN_PER_ADDRESS="1000/minute"), mp)
        await setup(settings, with_topics=False)
        await populate(settings)
        keys = await demo_credentials(settings, [SALON, RESTAURANT])
        async with AsyncExitStack() as stack:
            d = await gateway_deps(stack, settings)
            server, task, port = await _serve(d)
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            published: list[Event] = []
            responder = CountingResponder()
            world = World(d.ddb, settings, d.store, new_processor(d.ddb, settings, responder, published), responder, published)
            try:
                yield Owner(Gateway(d, http, port, keys), world)
            finally:
                server.should_exit = True
                await task


@dataclass
class Browser:
    """One person's cookie jar on the inbox."""

    http: httpx.AsyncClient

    async def csrf(self, path: str = "/inbox") -> str:
        page = await self.http.get(path)
        return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    async def sign_in(self, key: str, name: str) -> httpx.Response:
        return await self.http.post("/inbox/sign-in", data={"csrf": await self.csrf(), "apiKey": key, "name": name})

    async def act(self, session_id: str, action: str, **fields: str) -> httpx.Response:
        csrf = await self.csrf(f"/inbox/conversations/{session_id}")
        return await self.http.post(f"/inbox/conversations/{session_id}/{action}", data={"csrf": csrf, **fields})


@pytest.fixture
async def browser(owner: Owner) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{owner.gw.port}", timeout=30) as http:
        yield Browser(http)


async def signed_in(owner: Owner, browser: Browser, name: str = "Ana", business: str = SALON) -> Browser:
    response = await browser.sign_in(owner.gw.keys[business], name)
    assert response.status_code == 303, response.text
    return browser


def row_of(page: str, session_id: str) -> str:
    match = re.search(rf'<tr class="conversation" data-session="{re.escape(session_id)}">(.*?)</tr>', page, re.S)
    assert match, f"{session_id} not listed"
    return match.group(1)


def unread_in(row: str) -> int:
    match = re.search(r'<span class="unread">(\d+)</span>', row)
    return int(match.group(1)) if match else 0


async def test_sign_in_with_a_bad_key_is_refused_and_sets_nothing(owner: Owner, browser: Browser) -> None:
    first = await browser.http.get("/inbox")
    assert first.status_code == 200 and 'name="apiKey"' in first.text
    for key in (f"{SALON}.wrong-secret", "no-such-business.secret", "", owner.gw.keys[SALON] + "x"):
        refused = await browser.sign_in(key, "Ana")
        assert refused.status_code == 401 and "not valid" in refused.text
        assert "set-cookie" not in refused.headers
    assert 'name="apiKey"' in (await browser.http.get("/inbox")).text  # still signed out
    assert (await browser.http.get("/inbox/live")).status_code == 401
    no_name = await browser.sign_in(owner.gw.keys[SALON], "  ")
    assert no_name.status_code == 400 and "set-cookie" not in no_name.headers


async def test_the_session_cookie_is_httponly_strict_and_signed(owner: Owner, browser: Browser) -> None:
    response = await browser.sign_in(owner.gw.keys[SALON], "Ana")
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    cookie = response.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith(f"{COOKIE}=") and {"httponly", "samesite=strict", "path=/inbox"} <= flags
    assert owner.gw.keys[SALON].split(".")[-1] not in cookie  # the key itself is not in it
    page = await browser.http.get("/inbox")
    assert "Ana · demo-salon" in page.text and 'name="apiKey"' not in page.text
    value = browser.http.cookies[COOKIE]
    browser.http.cookies.clear()
    browser.http.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), domain="127.0.0.1", path="/inbox")
    assert 'name="apiKey"' in (await browser.http.get("/inbox")).text  # a tampered cookie is no session


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i1", "Bună, aveți loc mâine?")
    sid = await owner.session_id("i1")
    await signed_in(owner, browser)
    before = await owner.log("i1")
    url = f"/inbox/conversations/{sid}"
    for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
        for action, extra in (("take-over", {}), ("reply", {"text": "hi"}), ("release", {}), ("resolve", {})):
            refused = await browser.http.post(f"{url}/{action}", data=data | extra)
            assert refused.status_code == 403, (action, data)
    assert (await browser.http.post("/inbox/sign-out", data={})).status_code == 403
    assert await owner.log("i1") == before
    async with httpx.AsyncClient(base_url=str(browser.http.base_url)) as stranger:  # no session at all
        assert (await stranger.post(f"{url}/take-over", data={"csrf": "x"})).status_code == 401
        assert (await stranger.post("/inbox/sign-in", data={"apiKey": owner.gw.keys[SALON], "name": "A"})).status_code == 403
    assert await owner.log("i1") == before
    taken = await browser.act(sid, "take-over")
    assert taken.status_code == 303
    assert [e.type for e in await owner.log("i1")][-1] == "HandoffRequested"


async def test_take_over_reply_release_and_resolve_through_the_inbox(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i2", "Bună, vreau o programare vineri")
    sid = await owner.session_id("i2")
    stream = stream_id(SALON, "i2")
    await signed_in(owner, browser, "Maria B.")
    page = await browser.http.get(f"/inbox/conversations/{sid}")
    assert 'id="take-over"' in page.text and ">AI<" in page.text
    assert (await browser.act(sid, "take-over")).status_code == 303
    await drain(owner.world, stream)
    assert 'id="release"' in (await browser.http.get(f"/inbox/conversations/{sid}")).text
    sent = await browser.act(sid, "reply", text="Bună, sunt Maria: vineri la 10 e liber.")
    assert sent.status_code == 303
    await drain(owner.world, stream)
    person = [e for e in await owner.log("i2") if e.type == "OwnerReplied"]
    assert [(e.payload.author, e.payload.content) for e in person] == [("Maria B.", "Bună, sunt Maria: vineri la 10 e liber.")]
    quiet = await owner.customer_says("i2", "super, mulțumesc")
    assert quiet.eventId not in replied_to(await owner.log("i2"))
    page = await browser.http.get(f"/inbox/conversations/{sid}")
    texts = re.findall(r'<div class="msg (\w+)" data-seq="\d+"><span class="meta">[^<]*</span>([^<]*)</div>', page.text)
    assert [w for w, _ in texts] == ["user", "ai", "ai", "human", "user"]  # in order: reply, notice, the person
    assert texts[3][1] == "Bună, sunt Maria: vineri la 10 e liber." and "Maria B. ·" in page.text
    assert (await browser.act(sid, "release")).status_code == 303
    await drain(owner.world, stream)
    answered = await owner.customer_says("i2", "și cât costă?")
    assert answered.eventId in replied_to(await owner.log("i2"))
    assert (await browser.act(sid, "resolve")).status_code == 303
    await drain(owner.world, stream)
    resolved = [e for e in await owner.log("i2") if e.type == "SessionResolved"]
    assert len(resolved) == 1 and resolved[0].payload.reason == "resolved in the inbox by Maria B."
    page = await browser.http.get(f"/inbox/conversations/{sid}")
    assert ">Resolved<" in page.text and 'id="reply"' not in page.text


async def test_unread_counts_the_customer_messages_since_a_person_last_opened(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i3", "prima întrebare")
    sid = await owner.session_id("i3")
    await owner.customer_says("i3", "a doua întrebare")
    await signed_in(owner, browser)
    assert unread_in(row_of((await browser.http.get("/inbox")).text, sid)) == 2  # AI replies are not counted
    await browser.http.get(f"/inbox/conversations/{sid}")
    assert unread_in(row_of((await browser.http.get("/inbox")).text, sid)) == 0
    await owner.customer_says("i3", "a treia")
    assert unread_in(row_of((await browser.http.get("/inbox")).text, sid)) == 1
    async with httpx.AsyncClient(base_url=str(browser.http.base_url)) as other:  # a colleague opens it
        colleague = await signed_in(owner, Browser(other), "Ion")
        await colleague.http.get(f"/inbox/conversations/{sid}")
    assert unread_in(row_of((await browser.http.get("/inbox")).text, sid)) == 0
    events = [e.type for e in await owner.log("i3")]
    assert all(not t.startswith(("Inbox", "View")) for t in events)  # view state is not in the log


async def test_every_text_is_escaped(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i4", "bună")
    sid = await owner.session_id("i4")
    await signed_in(owner, browser, "<i>Ana</i>")
    assert (await browser.act(sid, "take-over")).status_code == 303
    await drain(owner.world, stream_id(SALON, "i4"))
    await owner.customer_says("i4", HOSTILE)  # no AI reply now: it is the list's last message
    listed = (await browser.http.get("/inbox")).text
    page = await browser.http.get(f"/inbox/conversations/{sid}")
    for html in (listed, page.text):
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#39;; DROP TABLE sessions;-- &amp; &lt;b&gt;bold&lt;/b&gt;" in html
        assert "<script>alert" not in html and "<b>bold" not in html and "<i>Ana</i>" not in html
        assert "&lt;i&gt;Ana&lt;/i&gt;" in html
    assert (await browser.act(sid, "reply", text="<img src=x onerror=alert(1)>")).status_code == 303
    await drain(owner.world, stream_id(SALON, "i4"))
    page = await browser.http.get(f"/inbox/conversations/{sid}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<img" not in page.text
    assert "nonce-" in page.headers["content-security-policy"] and "unsafe-inline" not in page.headers["content-security-policy"]
    live = await first_live_event(browser, f"/inbox/conversations/{sid}/live")
    assert "&lt;script&gt;alert" in live["messages"] and "<script>" not in live["messages"]


async def first_live_event(browser: Browser, path: str, wanted: str | None = None) -> dict[str, str]:
    """The first server-sent event of `path` (whose fragments contain `wanted`, if given)."""
    async with browser.http.stream("GET", path) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[len("data: "):])
                if wanted is None or any(wanted in part for part in data.values()):
                    return data
    raise AssertionError("the stream ended")


async def next_live_event(lines: AsyncIterator[str]) -> dict[str, str]:
    async for line in lines:
        if line.startswith("data: "):
            return json.loads(line[len("data: "):])
    raise AssertionError("the stream ended")


@pytest.mark.parametrize("run", range(int(os.environ.get("INBOX_LIVE_RUNS", "1"))))  # N runs in a row on one gateway
async def test_an_open_conversation_and_the_list_update_live(owner: Owner, browser: Browser, run: int) -> None:
    user = f"i5-{run}"
    await owner.customer_says(user, "salut")
    sid = await owner.session_id(user)
    await signed_in(owner, browser)
    async with browser.http.stream("GET", f"/inbox/conversations/{sid}/live") as convo, \
            browser.http.stream("GET", "/inbox/live") as listed:
        convo_lines, list_lines = convo.aiter_lines(), listed.aiter_lines()
        first = await next_live_event(convo_lines)
        assert "salut" in first["messages"] and "mesaj nou pe viu" not in first["messages"]
        before = await next_live_event(list_lines)
        assert unread_in(row_of(before["rows"], sid)) == 0  # the open conversation has been read
        await owner.customer_says(user, "mesaj nou pe viu")
        update = await next_live_event(convo_lines)
        assert update["messages"].index("salut") < update["messages"].index("mesaj nou pe viu")
        after = await next_live_event(list_lines)
        assert after != before and sid in after["rows"]


async def test_another_business_conversation_is_not_visible(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i6", "a salon secret")
    sid = await owner.session_id("i6")
    await signed_in(owner, browser, "Chef", business=RESTAURANT)
    assert sid not in (await browser.http.get("/inbox")).text
    before = await owner.log("i6")
    assert (await browser.http.get(f"/inbox/conversations/{sid}")).status_code == 404
    assert (await browser.http.get(f"/inbox/conversations/{sid}/live")).status_code == 404
    csrf = await browser.csrf()
    for action in ("take-over", "reply", "release", "resolve"):
        refused = await browser.http.post(f"/inbox/conversations/{sid}/{action}", data={"csrf": csrf, "text": "hi"})
        assert refused.status_code == 404 and "a salon secret" not in refused.text
    assert await owner.log("i6") == before


async def test_outside_the_24_hour_window_the_inbox_shows_why_and_keeps_the_draft(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i7", "aveți loc?", channel="whatsapp", ago=timedelta(hours=25), reply_to={"to": "+40700000007"})
    sid = await owner.session_id("i7")
    await signed_in(owner, browser)
    before = await owner.log("i7")
    refused = await browser.act(sid, "reply", text="Bună, da!")
    assert refused.status_code == 422 and "24-hour customer-service window" in refused.text
    assert ">Bună, da!</textarea>" in refused.text
    assert await owner.log("i7") == before


async def test_the_customer_facts_are_shown(owner: Owner, browser: Browser) -> None:
    await owner.customer_says("i8", "Bună, sunt Elena Popescu, telefon 0722 123 456")
    sid = await owner.session_id("i8")
    await signed_in(owner, browser)
    row = row_of((await browser.http.get("/inbox")).text, sid)
    assert "<b>phone</b> +40722123456" in row and "<b>name</b> Elena Popescu" in row
    assert "<b>phone</b> +40722123456" in (await browser.http.get(f"/inbox/conversations/{sid}")).text


async def test_rotating_the_api_key_signs_the_inbox_out(owner: Owner, browser: Browser) -> None:
    await signed_in(owner, browser, "Chef", business=RESTAURANT)
    assert "Chef · demo-restaurant" in (await browser.http.get("/inbox")).text
    new_key, old_key = f"{RESTAURANT}.rotated-secret-for-the-inbox-test", owner.gw.keys[RESTAURANT]
    await owner.gw.d.credentials.set(RESTAURANT, "rest", {"apiKey": new_key})  # as `credentials rotate` does
    try:
        page = await browser.http.get("/inbox")
        assert 'name="apiKey"' in page.text and "Chef · demo-restaurant" not in page.text
        assert (await browser.http.post("/inbox/sign-out", data={"csrf": "x"})).status_code == 401
        assert (await browser.sign_in(new_key, "Chef")).status_code == 303
    finally:  # the module's other tests sign in with the key they were given
        await owner.gw.d.credentials.set(RESTAURANT, "rest", {"apiKey": old_key})
