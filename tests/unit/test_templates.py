"""Outside the vendors' messaging window: the template (or tag) chosen when an outbound event is
appended, how delivery sends it, and how the fake Graph API refuses free text as Meta does."""

from datetime import datetime, timedelta, timezone

import pytest

from agentstream.adapters.channels.base import Template, Text
from agentstream.adapters.channels.errors import PermanentError
from agentstream.adapters.channels.meta import _messenger_body, _whatsapp_body
from agentstream.events import new_event
from agentstream.projections import templates
from agentstream.projections.base import FoldConfig
from agentstream.projections.conversation import nudge_due_attributes
from agentstream.streams.outbound import outgoing
from tests.fakes.vendors import VendorState

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
REPLY = {"ro": {"name": "raspuns_coleg", "contentSid": "HXreply", "params": ["author", "text"]}}
SETTINGS = {"ownerReply": {"whatsapp": REPLY},
            "nudge": {"whatsapp": {"ro": {"name": "revenire", "params": ["text"]}}}}


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(("channel", "hours_ago", "state"), [
    ("whatsapp", 1, "open"), ("whatsapp", 23.99, "open"), ("whatsapp", 24.01, "closed"), ("whatsapp", 72, "closed"),
    ("messenger", 2, "open"), ("messenger", 25, "closed"), ("instagram", 25, "closed"),
    ("sms", 500, "none"), ("websocket", 500, "none"), ("gmail", 500, "none"), ("telegram", 500, "none"),
    ("rest", 500, "none"),
])
def test_the_window_closes_24_hours_after_the_customers_last_message(channel: str, hours_ago: float, state: str) -> None:
    assert templates.window_state(channel, at(hours_ago), NOW) == state


def test_a_customer_who_has_not_written_is_outside_the_window() -> None:
    assert templates.window_state("whatsapp", None, NOW) == "closed"
    assert templates.window_state("sms", None, NOW) == "none"


def test_inside_the_window_a_message_is_free_text() -> None:
    assert templates.plan("whatsapp", "ownerReply", at(2), NOW, SETTINGS, "ro", {"text": "Da"}) == {"window": "open"}


def test_outside_it_the_template_goes_with_its_parameters_in_order() -> None:
    plan = templates.plan("whatsapp", "ownerReply", at(30), NOW, SETTINGS, "ro", {"text": "Da, avem loc", "author": "Ana"})
    assert plan == {"window": "closed", "template": {"name": "raspuns_coleg", "contentSid": "HXreply", "language": "ro",
                                                      "params": ["Ana", "Da, avem loc"]}}


def test_a_language_without_a_template_takes_the_businesss_language() -> None:
    plan = templates.plan("whatsapp", "ownerReply", at(30), NOW, SETTINGS, "en", {"text": "Yes"}, "ro")
    assert plan["template"]["language"] == "ro"


def test_without_a_template_the_refusal_says_what_to_add() -> None:
    with pytest.raises(templates.NoTemplate) as refused:
        templates.plan("whatsapp", "reminder", at(30), NOW, SETTINGS, "ro", {})
    assert "24-hour customer-service window" in str(refused.value)
    assert "settings.templates.reminder.whatsapp.ro" in str(refused.value) and at(30) in str(refused.value)


@pytest.mark.parametrize(("channel", "hours_ago", "tagged"), [
    ("messenger", 30, True), ("instagram", 30, True), ("messenger", 24 * 7 - 1, True), ("messenger", 24 * 7 + 1, False),
    ("whatsapp", 30, False),
])
def test_a_persons_reply_on_messenger_or_instagram_within_7_days_uses_the_human_agent_tag(
        channel: str, hours_ago: float, tagged: bool) -> None:
    if tagged:
        assert templates.plan(channel, "ownerReply", at(hours_ago), NOW, {}, "ro", {}) == {"window": "closed",
                                                                                           "tag": "HUMAN_AGENT"}
    else:
        with pytest.raises(templates.NoTemplate):
            templates.plan(channel, "ownerReply", at(hours_ago), NOW, {}, "ro", {})


def test_a_nudge_or_a_reminder_never_takes_the_tag() -> None:
    with pytest.raises(templates.NoTemplate):
        templates.plan("messenger", "nudge", at(30), NOW, {}, "ro", {})


def _reply(send: dict | None, channel: str = "whatsapp"):
    payload = {"sessionId": "s", "content": "Da, avem loc", "author": "Ana", "deliverTo": {"to": "+40700000001"}}
    return new_event("OwnerReplied", business_id="b", user_id="u", channel=channel,
                     payload=payload | ({"send": send} if send else {}))


def test_delivery_sends_what_the_event_recorded() -> None:
    closed = {"window": "closed", "template": {"name": "raspuns_coleg", "contentSid": "HXreply", "language": "ro",
                                               "params": ["Ana", "Da"]}}
    assert outgoing(_reply(closed), "meta") == Template("raspuns_coleg", "ro", ("Ana", "Da"))
    assert outgoing(_reply(closed), "twilio") == Template("HXreply", "ro", ("Ana", "Da"))
    assert outgoing(_reply({"window": "open"}), "meta") == Text("Da, avem loc")
    assert outgoing(_reply(None), "meta") == Text("Da, avem loc")  # events from before the field
    assert outgoing(_reply({"window": "closed", "tag": "HUMAN_AGENT"}, "messenger"), "meta") == Text("Da, avem loc",
                                                                                                    "HUMAN_AGENT")


def test_delivery_refuses_a_closed_window_without_a_template_and_a_template_without_the_vendors_id() -> None:
    with pytest.raises(PermanentError, match="no template"):
        outgoing(_reply({"window": "closed"}), "meta")
    meta_only = {"window": "closed", "template": {"name": "raspuns_coleg", "language": "ro", "params": []}}
    with pytest.raises(PermanentError, match="contentSid"):
        outgoing(_reply(meta_only), "twilio")


def test_the_graph_bodies() -> None:
    body = _whatsapp_body(Template("raspuns_coleg", "ro", ("Ana", "Da")))
    assert body == {"type": "template", "template": {"name": "raspuns_coleg", "language": {"code": "ro"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Da"}]}]}}
    assert _messenger_body(Text("Da", "HUMAN_AGENT")) == {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
                                                          "message": {"text": "Da"}}
    assert _messenger_body(Text("Da"))["messaging_type"] == "RESPONSE"


def test_the_fake_graph_api_refuses_free_text_outside_the_window_as_meta_does() -> None:
    state = VendorState(now=lambda: 100 * 3600.0)
    state.customer_wrote("+40700000001", at=70 * 3600.0)
    text = {"messaging_product": "whatsapp", "to": "+40700000001", "type": "text", "text": {"body": "Hi"}}
    assert "131047" in state.window_problem("+40700000001", text)
    assert state.window_problem("+40700000001", {**text, "type": "template"}) is None
    state.customer_wrote("+40700000001", at=90 * 3600.0)
    assert state.window_problem("+40700000001", text) is None
    tagged = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    state.customer_wrote("psid", at=0.0)  # 100 hours ago: the tag is allowed
    assert state.window_problem("psid", tagged) is None
    assert "131047" in state.window_problem("psid", {"messaging_type": "RESPONSE"})
    state.now = lambda: 8 * 24 * 3600.0
    assert "7 days" in state.window_problem("psid", tagged)


def test_a_nudge_past_the_window_is_due_with_its_template() -> None:
    config = FoldConfig(idle_minutes=60 * 48, timezone="Europe/Bucharest", opening_hours={
        "mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]]}, nudge_after_minutes=60 * 30, language="ro", templates=SETTINGS)
    ctx = {"status": "active", "sessionId": "s", "lastMessageAt": "2026-11-30T08:00:00.000Z", "lastMessages": [],
           "lastInbound": {"channel": "whatsapp", "at": "2026-11-30T08:00:00.000Z", "replyTo": {"to": "+4070"}}}
    plan = nudge_due_attributes(ctx, config)["nudgeDue"]
    assert plan["at"] == "2026-12-01T14:00:00.000Z" and plan["windowUntil"] == "2026-12-01T08:00:00.000Z"
    assert plan["template"] == {"name": "revenire", "language": "ro", "params": [plan["content"]]}
    send = templates.outbound_send(plan["windowUntil"], plan["template"], datetime(2026, 12, 1, 14, tzinfo=timezone.utc))
    assert send == {"window": "closed", "template": plan["template"]}
    without = FoldConfig(**{**config.__dict__, "templates": {}})
    assert nudge_due_attributes(ctx, without) == {}  # past the window with no template: no nudge


@pytest.mark.parametrize(("templates_setting", "problem"), [
    ({"reminder": {"whatsapp": {"ro": {"name": "x", "params": ["name"]}}}}, None),
    ({"remind": {}}, "unknown purpose 'remind'"),
    ({"reminder": {"fax": {}}}, "unknown channel 'fax'"),
    ({"reminder": {"whatsapp": {"ro": {"params": []}}}}, "needs a name (Meta) or a contentSid (Twilio)"),
    ({"reminder": {"whatsapp": {"ro": {"name": "x", "params": "name"}}}}, "params must be a list"),
    ("x", "must map a purpose"),
])
def test_the_settings_check(templates_setting: object, problem: str | None) -> None:
    found = templates.settings_error({"businessId": "salon", "settings": {"templates": templates_setting}})
    assert (found is None) if problem is None else (problem in found)
