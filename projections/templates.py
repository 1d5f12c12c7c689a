"""How a message to the customer goes out: free text inside the channel's messaging window, an
approved template (or Messenger's HUMAN_AGENT tag) outside it (pure).

The choice is made once, when the outbound event is appended, and recorded in the event's
`send` field {window, template, tag}: delivery and replay read it and never decide again.

A business maps purposes to approved templates in `settings.templates`:

    {"reminder": {"whatsapp": {"ro": {"name": "programare_reminder", "contentSid": "HX…",
                                       "params": ["name", "when", "service"]}}}}

`name` is Meta's template name, `contentSid` Twilio's content SID for the same template (either
or both); `params` names, in order, the values the template's body takes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agentstream import channel_specs

PURPOSES = ("reminder", "appointmentConfirmed", "appointmentProposed", "appointmentDeclined", "appointmentCancelled",
            "ownerReply", "nudge")
HUMAN_AGENT = "HUMAN_AGENT"
HUMAN_AGENT_DAYS = 7
TAGGED_CHANNELS = ("messenger", "instagram")  # Meta's human-agent tag: a person's reply within 7 days
PERSON_PURPOSES = ("ownerReply",)


class NoTemplate(ValueError):
    """Outside the window with no approved template (nor tag) for that purpose, channel and language."""


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def window_state(channel: str, last_inbound_at: str | None, at: datetime) -> str:
    """"none" (the channel has no window), "open" or "closed" at `at`."""
    hours = channel_specs.window_hours(channel)
    if hours is None:
        return "none"
    if last_inbound_at is None or at - _parse(last_inbound_at) > timedelta(hours=hours):
        return "closed"
    return "open"


def window_ends(channel: str, last_inbound_at: str | None) -> datetime | None:
    """When free text stops being allowed (None: the channel has no window or nobody wrote)."""
    hours = channel_specs.window_hours(channel)
    if hours is None or last_inbound_at is None:
        return None
    return _parse(last_inbound_at) + timedelta(hours=hours)


def find(templates: Any, purpose: str, channel: str, language: str, fallback: str = "") -> dict[str, Any] | None:
    """The business's template for `purpose` on `channel` in `language` (else in `fallback`)."""
    by_language = ((templates or {}).get(purpose) or {}).get(channel) or {}
    chosen = by_language.get(language) or (by_language.get(fallback) if fallback else None)
    if chosen is None:
        return None
    return {**chosen, "language": language if language in by_language else fallback}


def has_template(templates: Any, purpose: str, channel: str) -> bool:
    return bool(((templates or {}).get(purpose) or {}).get(channel))


def use(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """A template as recorded in the event: its ids, language and its parameters' values in order."""
    used: dict[str, Any] = {"language": template["language"],
                            "params": [str(values.get(name, "")) for name in template.get("params", [])]}
    for key in ("name", "contentSid"):
        if template.get(key):
            used[key] = template[key]
    return used


def plan(channel: str, purpose: str, last_inbound_at: str | None, at: datetime, templates: Any,
         language: str, values: dict[str, str], fallback_language: str = "") -> dict[str, Any]:
    """The `send` field of an outbound event appended at `at`: {window} inside it or on a channel
    without one; outside, {window, template} or (a person's reply on Messenger or Instagram within
    7 days) {window, tag}. Raises NoTemplate when none of these applies."""
    state = window_state(channel, last_inbound_at, at)
    if state != "closed":
        return {"window": state}
    template = find(templates, purpose, channel, language, fallback_language)
    if template is not None and channel_specs.can(channel, "template"):
        return {"window": "closed", "template": use(template, values)}
    if purpose in PERSON_PURPOSES and tag_allowed(channel, last_inbound_at, at):
        return {"window": "closed", "tag": HUMAN_AGENT}
    raise NoTemplate(refusal(channel, purpose, language, last_inbound_at))


def tag_allowed(channel: str, last_inbound_at: str | None, at: datetime) -> bool:
    """Whether a person's message may go out with Meta's HUMAN_AGENT tag (Messenger, Instagram:
    within 7 days of the customer's last message)."""
    return channel in TAGGED_CHANNELS and last_inbound_at is not None \
        and at - _parse(last_inbound_at) <= timedelta(days=HUMAN_AGENT_DAYS)


def outbound_send(window_until: str | None, template: dict[str, Any] | None, at: datetime) -> dict[str, Any]:
    """The `send` of a timer's message planned by a fold: `window_until` is when the window closes
    (None: no window), `template` the one to use past it."""
    if window_until is None:
        return {"window": "none"}
    if at <= _parse(window_until):
        return {"window": "open"}
    return {"window": "closed", **({"template": template} if template else {})}


def refusal(channel: str, purpose: str, language: str, last_inbound_at: str | None) -> str:
    """Why nothing can be sent: the window closed and no template for it."""
    name, hours = channel_specs.title(channel), channel_specs.window_hours(channel)
    since = f"the customer last wrote at {last_inbound_at}" if last_inbound_at else "the customer has not written in this session"
    return (f"outside {name}'s {hours}-hour customer-service window ({since}) and no approved template for "
            f"{purpose!r} on {channel} in {language!r}: add one under settings.templates.{purpose}.{channel}.{language}")


def settings_error(info: dict[str, Any]) -> str | None:
    """Why a business's settings.templates is refused (None: fine or absent)."""
    templates = (info.get("settings") or {}).get("templates")
    if templates is None:
        return None
    who = f"{info.get('businessId')}: settings.templates"
    if not isinstance(templates, dict):
        return f"{who} must map a purpose to channels"
    for purpose, channels in templates.items():
        if purpose not in PURPOSES:
            return f"{who}: unknown purpose {purpose!r}; known: {', '.join(PURPOSES)}"
        if not isinstance(channels, dict):
            return f"{who}.{purpose} must map a channel to languages"
        for channel, languages in channels.items():
            if channel not in channel_specs.names():
                return f"{who}.{purpose}: unknown channel {channel!r}"
            if not isinstance(languages, dict):
                return f"{who}.{purpose}.{channel} must map a language to a template"
            for language, template in languages.items():
                problem = _template_problem(template)
                if problem:
                    return f"{who}.{purpose}.{channel}.{language}: {problem}"
    return None


def _template_problem(template: Any) -> str | None:
    if not isinstance(template, dict):
        return "must be {name or contentSid, params}"
    if not any(isinstance(template.get(k), str) and template[k].strip() for k in ("name", "contentSid")):
        return "needs a name (Meta) or a contentSid (Twilio)"
    params = template.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
        return "params must be a list of parameter names"
    return None
