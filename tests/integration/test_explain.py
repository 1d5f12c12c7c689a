"""Why this reply, on the real local DynamoDB server: a reply's context and prompt are rebuilt
from the log and the config history, `reproduced` when the hash matches, with last month's
business info after it changed; from the command line and over HTTP. When it is not reproduced,
each difference `explain` can name has a case."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import httpx
import pytest

from agentstream.bootstrap import demo_credentials
from agentstream.adapters.dynamo.config_history import ConfigHistory, info_key, instructions_key, rag_key
from agentstream.adapters.dynamo.client import from_item, to_item
from agentstream.events import Event, ReplyGenerated, new_event, reply_event_id
from agentstream.streams.reply_policy import reply_key
from agentstream.streams.explain import NotExplainable
from agentstream.wiring import new_explainer, gateway_deps
from tests.integration.test_cli import cli
from tests.integration.test_gateway_auth import _serve
from tests.integration.world import World, drain, inbound

ANA = ("Buna ziua, ma numesc Ana, telefonul meu e 0722 123 456", "Puteti sa ma programati joi la 10 pentru tuns?")


async def _conversation(world: World, user: str) -> list[Event]:
    """Two turns of a customer who gives her name and phone, then asks for Thursday at 10."""
    for minute, text in enumerate(ANA):
        await world.store.append(inbound(user, text, minute))
    await drain(world, f"demo-salon#{user}")
    return await world.store.read(f"demo-salon#{user}")


def _replies(events: list[Event]) -> list[ReplyGenerated]:
    return [e for e in events if isinstance(e, ReplyGenerated)]


async def test_a_reply_is_reproduced_with_the_facts_and_time_it_was_built_from(world: World) -> None:
    events = await _conversation(world, "ana")
    reply = _replies(events)[-1]
    assert reply.schemaVersion == 5 and len(reply.payload.promptHash) == 64
    assert set(reply.payload.versions) == {"businessInfo", "systemInstructions", "rag"} and all(reply.payload.versions.values())

    found = await new_explainer(world.ddb, world.settings).explain(reply.eventId)
    data = found.to_json()
    assert data["reproduced"] is True and data["differences"] == [] and data["promptHash"] == reply.payload.promptHash
    facts = {f["kind"]: f["value"] for f in data["context"]["facts"]}
    assert facts["name"] == "Ana" and facts["phone"] == "+40722123456"
    assert facts["appointment"] == {"at": "2026-11-26T10:00:00+02:00", "service": "tuns"}  # T0 is a Tuesday
    assert data["context"]["time"] | {} == {**data["context"]["time"], "local_time": "10:01", "date": "2026-11-24", "weekday": "tuesday"}
    assert "Ana" in data["prompt"][0]["content"] and data["prompt"][-1]["content"] == ANA[1]

    by_inbound = await new_explainer(world.ddb, world.settings).explain(reply.payload.inReplyTo)
    assert by_inbound.to_json() == data


async def test_after_the_opening_hours_change_a_reply_is_explained_with_the_old_ones(world: World) -> None:
    reply = _replies(await _conversation(world, "ana2"))[-1]
    table, key = world.settings.tables.business_info, to_item({"businessId": "demo-salon"})
    info = from_item((await world.ddb.get_item(TableName=table, Key=key))["Item"])
    old_hours = json.dumps(info["openingHours"]["mon"], ensure_ascii=False)
    info["openingHours"]["mon"] = [["07:00", "23:00"]]
    await world.ddb.put_item(TableName=table, Item=to_item(info))

    explainer = new_explainer(world.ddb, world.settings)  # a fresh directory: it reads (and records) the new info
    assert (await explainer._directory.info("demo-salon"))["openingHours"]["mon"] == [["07:00", "23:00"]]
    data = (await explainer.explain(reply.eventId)).to_json()
    assert data["reproduced"] is True
    assert data["context"]["businessInfo"]["openingHours"]["mon"] != [["07:00", "23:00"]]
    assert old_hours.replace(" ", "") in data["prompt"][0]["content"].replace(" ", "")
    assert data["context"]["versions"]["businessInfo"] == reply.payload.versions["businessInfo"]


async def test_a_prompt_that_is_not_rebuilt_the_same_says_why(world: World) -> None:
    reply = _replies(await _conversation(world, "ana3"))[-1]
    smaller = world.settings.model_copy(update={"prompt_budget_chars": 1000})  # another build's prompt
    data = (await new_explainer(world.ddb, smaller).explain(reply.eventId)).to_json()
    assert data["reproduced"] is False
    assert data["differences"] == ["business data versions match: the fold or the prompt builder changed since (another build)"]


async def test_explain_from_the_command_line_and_over_http(world: World) -> None:
    reply = _replies(await _conversation(world, "ana4"))[-1]
    printed = cli("explain", reply.eventId, "--json")
    assert printed.returncode == 0, printed.stdout
    data = json.loads(printed.stdout.strip().splitlines()[-1])
    assert data["reproduced"] is True and {f["kind"] for f in data["context"]["facts"]} >= {"name", "phone", "appointment"}
    person = cli("explain", reply.eventId)
    assert "reproduced: yes" in person.stdout and "name: Ana" in person.stdout
    missing = cli("explain", "no-such-event")
    assert missing.returncode == 1 and "no event 'no-such-event' in the log" in missing.stdout

    keys = await demo_credentials(world.settings, ["demo-salon", "demo-restaurant"])
    async with AsyncExitStack() as stack:
        d = await gateway_deps(stack, world.settings)
        server, task, port = await _serve(d)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                def get(event_id: str, key: str) -> object:
                    return http.get(f"/v1/replies/{event_id}/explain", headers={"Authorization": f"Bearer {key}"})

                ok = await get(reply.eventId, keys["demo-salon"])
                assert ok.status_code == 200 and ok.json()["reproduced"] is True
                assert (await get(reply.eventId, keys["demo-restaurant"])).status_code == 404  # not its reply
                assert (await get("no-such-event", keys["demo-salon"])).status_code == 404
                assert (await get(reply.eventId, "demo-salon.wrong")).status_code == 401
        finally:
            server.should_exit = True
            await task


async def test_an_event_that_is_not_logged_is_not_explained(world: World) -> None:
    try:
        await new_explainer(world.ddb, world.settings).explain("nothing-here")
    except NotExplainable as exc:
        assert "no event 'nothing-here'" in str(exc)
    else:
        raise AssertionError("an unknown event was explained")


HISTORY_KEYS = {"businessInfo": info_key("demo-salon"), "systemInstructions": instructions_key("salon"),
                "rag": rag_key("demo-salon")}


async def _lose_history_and_change(world: World, name: str) -> None:
    """The config history of `name` is lost (a table recreated, say) and its content changed since."""
    table = world.settings.tables.config_history
    for valid_from, _, _ in await ConfigHistory(world.ddb, table).versions(HISTORY_KEYS[name]):
        await world.ddb.delete_item(TableName=table, Key=to_item({"configKey": HISTORY_KEYS[name], "validFrom": valid_from}))
    tables = world.settings.tables
    if name == "businessInfo":
        key = to_item({"businessId": "demo-salon"})
        info = from_item((await world.ddb.get_item(TableName=tables.business_info, Key=key))["Item"])
        info["openingHours"]["mon"] = [["07:00", "23:00"]]
        await world.ddb.put_item(TableName=tables.business_info, Item=to_item(info))
    elif name == "systemInstructions":
        await world.ddb.put_item(TableName=tables.rag_system, Item=to_item(
            {"businessType": "salon", "key": "99-new", "content": "Mention the loyalty card."}))
    else:
        await world.ddb.put_item(TableName=tables.rag_business, Item=to_item(
            {"businessId": "demo-salon", "key": "zz-new", "content": "Avem și cafea."}))


@pytest.mark.parametrize("name", sorted(HISTORY_KEYS))
async def test_a_version_the_history_has_lost_is_named(world: World, name: str) -> None:
    reply = _replies(await _conversation(world, f"lost-{name}"))[-1]
    recorded = reply.payload.versions[name]
    await _lose_history_and_change(world, name)
    data = (await new_explainer(world.ddb, world.settings).explain(reply.eventId)).to_json()
    assert data["reproduced"] is False
    (difference,) = data["differences"]
    now = data["context"]["versions"][name]
    assert now != recorded and difference.startswith(f"{name}: the reply used version {recorded}, the history has {now}")
    assert any(f"version {recorded} is not in the config history" in note for note in data["notes"]), data["notes"]


async def test_a_message_without_a_reply_says_so(world: World) -> None:
    message = (await world.store.append(inbound("unanswered", "Aveți loc mâine?"))).event
    data = (await new_explainer(world.ddb, world.settings).explain(message.eventId)).to_json()
    assert data["reproduced"] is False and data["reply"] is None
    assert data["differences"] == ["the message has no reply in the log"]


async def test_a_reply_that_recorded_no_prompt_hash_says_so(world: World) -> None:
    message = (await world.store.append(inbound("older", "Aveți loc mâine?"))).event
    draft = new_event("ReplyGenerated", event_id=reply_event_id(message.eventId), business_id="demo-salon",
                      user_id="older", channel="websocket",
                      payload={"content": "Da.", "inReplyTo": message.eventId, "sessionId": "s", "model": "m"})
    reply = (await world.store.append(draft, external_id=reply_key(message.eventId))).event
    assert isinstance(reply, ReplyGenerated) and reply.payload.promptHash == ""
    for asked in (reply.eventId, message.eventId):  # by the reply or by its message
        data = (await new_explainer(world.ddb, world.settings).explain(asked)).to_json()
        assert data["reproduced"] is False
        assert data["differences"] == ["the reply recorded no prompt hash (written before schemaVersion 2)"]
