"""The owner's commands and queries, one service for the API routes and the inbox alike: hand a
conversation to a person, send the owner's message, release it to the AI, resolve it, correct or
retract a customer's fact; list the conversations, read a customer's facts.

Commands only append to the log (the folds decide); queries read the worker's projections, a
moment behind the log. A refusal is an `HttpError` with the status the API answers.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agentstream import channel_specs
from agentstream import idempotency as keys
from agentstream.adapters.dynamo.business import BusinessDirectory, handoff_timeout_minutes
from agentstream.adapters.channels.rest import REST
from agentstream.adapters.http.errors import HttpError
from agentstream.adapters.dynamo.event_store import EventStore
from agentstream.adapters.dynamo.projection_store import ProjectionStore
from agentstream.events import FACT_KINDS, Event, new_event, stream_id, utc_now
from agentstream.projections.extraction import VALUE_LIMIT
from agentstream.projections.facts import LIMITS, apply_facts, clean_value, current_facts, empty_facts
from agentstream.projections import templates
from agentstream.projections.handoff import OWNER_REPLIED, status_of
from agentstream.projections.topics import detect_language

MAX_TEXT = 4_000
MAX_AUTHOR = 100
MAX_LIST = 500
MAX_IDEMPOTENCY_KEY = 128
STATUSES = ("ai", "waiting", "human", "resolved")
UNKNOWN_CUSTOMER = "unknown customer"
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)*\.[a-z]{2,}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_VALUE_HINTS = {
    "phone": "a phone number (E.164, or national for the business's country)",
    "email": "an email address",
    "language": "a language code such as 'ro' or 'en'",
    "appointment": '{"at": ISO date or local date-time, "service": optional string}, not in the past',
    "order": 'an order reference, or {"ref": …}',
}


class OwnerService:
    """What the owner can do and see, over the event log, the projections and the directory."""

    def __init__(self, store: EventStore, projections: ProjectionStore, directory: BusinessDirectory) -> None:
        self._store = store
        self._projections = projections
        self._directory = directory

    # -- sessions ----------------------------------------------------------------------------

    async def owned_session(self, business_id: str, session_id: str) -> dict[str, Any]:
        """The business's session; another business's session is as unknown as a missing one (404)."""
        session = await self._projections.session(session_id)
        if session is None or session.get("businessId") != business_id:
            raise HttpError(404, "unknown session")
        return session

    async def active_session(self, business_id: str, session_id: str) -> dict[str, Any]:
        """The business's session (404 otherwise); 409 once it ended."""
        session = await self.owned_session(business_id, session_id)
        if session.get("status") != "active":
            raise HttpError(409, f"the session is {session.get('status')}: it can no longer be handed over")
        return session

    async def business(self, business_id: str) -> tuple[int, str]:
        """The business's handoff timeout (minutes) and time zone."""
        info = await self._directory.info(business_id)
        return handoff_timeout_minutes(info), str((info or {}).get("timezone") or "UTC")

    async def _status(self, session: dict[str, Any]) -> str:
        timeout, _ = await self.business(session["businessId"])
        return status_of(session, utc_now(), timeout)

    async def _append(self, event: Event, external_id: str | None = None) -> dict[str, Any]:
        result = await self._store.append(event, external_id=external_id)
        return {"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate}

    # -- handoff commands --------------------------------------------------------------------

    async def hand_off(self, session: dict[str, Any], reason: str) -> dict[str, Any]:
        """HandoffRequested by the owner, unless the conversation is already with a person (then
        {"status", "duplicate": True} and nothing appended)."""
        status = await self._status(session)
        if status in ("waiting", "human"):
            return {"sessionId": session["sessionId"], "status": status, "duplicate": True}
        appended = await self._append(_handoff_event(session, reason))
        return {"sessionId": session["sessionId"], "status": "waiting", **appended}

    async def send_message(self, session: dict[str, Any], text: str, author: str,
                           key: str | None = None) -> dict[str, Any]:
        """OwnerReplied through the customer's last channel (a conversation with the AI is handed off
        first); 400 for a bad text, author or key, 422 outside the vendor's 24-hour window."""
        text, author = _text(text, author)
        last = await self._last_inbound(session)
        send = await self._send_plan(session, last, text, author)
        if key is not None and not 1 <= len(key.strip()) <= 128:
            raise HttpError(400, "Idempotency-Key must be 1 to 128 characters")
        if await self._status(session) == "ai":
            await self._append(_handoff_event(session, OWNER_REPLIED))  # the fold ignores it if one is in flight
        event = new_event("OwnerReplied", business_id=session["businessId"], user_id=session["userId"],
                          channel=last["channel"], payload={"sessionId": session["sessionId"], "content": text,
                                                            "author": author, "deliverTo": dict(last.get("replyTo") or {}),
                                                            "send": send})
        return await self._append(event, None if key is None else keys.owner_message(key.strip()))

    async def release(self, session: dict[str, Any], reason: str, by: str = "owner", key: str | None = None) -> dict[str, Any]:
        """HandoffReleased by the owner (or the system: budget again): the AI answers again; once per `key` if given."""
        event = new_event("HandoffReleased", business_id=session["businessId"], user_id=session["userId"], channel="system",
                          payload={"sessionId": session["sessionId"], "by": by, "reason": reason[:500]})
        return {"sessionId": session["sessionId"], "status": "ai", **await self._append(event, key)}

    async def resolve(self, session: dict[str, Any], reason: str = "resolved through the API") -> dict[str, Any]:
        """SessionResolved (once per session: a second resolve is a duplicate)."""
        event = new_event("SessionResolved", business_id=session["businessId"], user_id=session["userId"], channel="system",
                          payload={"sessionId": session["sessionId"], "reason": reason})
        return await self._append(event, external_id=keys.resolved(session["sessionId"]))

    async def _send_plan(self, session: dict[str, Any], last: dict[str, Any], text: str, author: str) -> dict[str, Any]:
        """Free text inside the window, else the business's `ownerReply` template (or Messenger's
        HUMAN_AGENT tag); 422 saying why when there is neither."""
        info = await self._directory.info(session["businessId"]) or {}
        fallback = str(info.get("language") or "en")
        language = detect_language(last.get("said") or "", fallback) if last.get("said") else fallback
        values = {"text": text, "author": author, "business": str(info.get("name") or session["businessId"])}
        try:
            return templates.plan(last["channel"], "ownerReply", last.get("at"), utc_now(),
                                  (info.get("settings") or {}).get("templates"), language, values, fallback)
        except templates.NoTemplate as exc:
            raise HttpError(422, str(exc)) from None

    async def _last_inbound(self, session: dict[str, Any]) -> dict[str, Any]:
        """The channel, addressing and time of the customer's last message in this session."""
        memory = await self._projections.load_memory(session["businessId"], session["userId"]) or {}
        ctx = memory.get("sessionContext") or {}
        if ctx.get("sessionId") != session["sessionId"] or not ctx.get("lastInbound"):
            channel = ((session.get("metadata") or {}).get("context") or {}).get("channel") or REST.name
            return {"channel": channel, "replyTo": {}, "at": None}
        said = [t["content"] for t in ctx.get("lastMessages", []) if t.get("role") == "user"]
        return {**ctx["lastInbound"], "said": said[-1] if said else ""}

    # -- conversation lists ------------------------------------------------------------------

    async def conversations(self, business_id: str, status: str | None = None, limit: int = MAX_LIST
                            ) -> list[dict[str, Any]]:
        """The business's conversations (`conversation_view` rows) of one status (all if None),
        latest message first, at most `limit`."""
        if status is not None and status not in STATUSES:
            raise HttpError(400, f"status must be one of {', '.join(STATUSES)}")
        sessions = await self._projections.business_sessions(business_id)
        (timeout, _), now = await self.business(business_id), utc_now()
        rows = [conversation_view(s, timeout, now) for s in sessions]
        return sorted((r for r in rows if status is None or r["status"] == status),
                      key=lambda r: r["lastMessageAt"] or "", reverse=True)[:limit]

    async def session_messages(self, session_id: str) -> list[dict[str, Any]]:
        return await self._projections.session_messages(session_id)

    async def customers(self, business_id: str, user_ids: list[str], with_memory: bool = True
                        ) -> tuple[dict[str, list[tuple[str, str]]], dict[str, dict[str, Any]]]:
        """Each customer's current facts as (kind, text) and, with `with_memory`, the delivery
        statuses of their memory ({"replyStatus": …})."""
        states, memories = await self._projections.customers(business_id, user_ids, with_memory)
        now = utc_now()
        facts = {user: [(f["kind"], fact_text(f["value"])) for f in current_facts(state, now)]
                 for user, state in states.items()}
        return facts, memories

    # -- facts -------------------------------------------------------------------------------

    async def facts(self, business_id: str, user_id: str) -> dict[str, Any]:
        """The customer's facts as `facts_view` shows them; 404 for a customer with none."""
        state = await self._projections.customer_facts(business_id, user_id)
        if state is None:
            raise HttpError(404, UNKNOWN_CUSTOMER)
        return facts_view(state, utc_now())

    async def correct_fact(self, business_id: str, user_id: str, kind: str, value: Any,
                           key: str | None = None) -> dict[str, Any]:
        """FactCorrected (source "owner"); 400 for a value the fold could not hold, 404 for an
        unknown customer, once per Idempotency-Key `key` (if given)."""
        kind = fact_kind(kind)
        timezone = await self._timezone(business_id)
        value = owner_value(kind, value, timezone)
        try:
            event = new_event("FactCorrected", business_id=business_id, user_id=user_id, channel="system",
                              payload={"kind": kind, "value": value, "source": "owner"})
        except ValidationError:
            raise _refuse_value(kind) from None
        if not _held_by_fold(event, timezone):
            raise _refuse_value(kind)
        return await self._append_fact(event, await self._head(business_id, user_id), key)

    async def retract_fact(self, business_id: str, user_id: str, kind: str, key: str | None = None) -> dict[str, Any]:
        """FactRetracted (source "owner"); 404 for an unknown customer."""
        kind = fact_kind(kind)
        head = await self._head(business_id, user_id)
        event = new_event("FactRetracted", business_id=business_id, user_id=user_id, channel="system",
                          payload={"kind": kind, "source": "owner"})
        return await self._append_fact(event, head, key)

    async def _timezone(self, business_id: str) -> str:
        info = await self._directory.info(business_id) or {}
        return str(info.get("timezone") or "UTC")

    async def _head(self, business_id: str, user_id: str) -> int:
        """The customer's stream head; 404 for a customer with no events."""
        head = await self._store.head(stream_id(business_id, user_id))
        if head == 0:
            raise HttpError(404, UNKNOWN_CUSTOMER)
        return head

    async def _append_fact(self, event: Event, head: int, key: str | None) -> dict[str, Any]:
        """Append `event` (once per Idempotency-Key, if given): {"eventId", "seq", "duplicate"}."""
        key = _fact_key(key)
        result = await self._store.append(event, external_id=None if key is None else keys.owner_facts(key), head=head)
        if result.duplicate:
            first = result.event
            if (first.streamId, first.type, first.payload) != (event.streamId, event.type, event.payload):
                raise HttpError(422, "Idempotency-Key already used for another request")
        return {"eventId": result.event.eventId, "seq": result.event.seq, "duplicate": result.duplicate}


def _handoff_event(session: dict[str, Any], reason: str) -> Event:
    return new_event("HandoffRequested", business_id=session["businessId"], user_id=session["userId"], channel="system",
                     payload={"sessionId": session["sessionId"], "by": "owner", "reason": reason[:500]})


def _text(text: str, author: str) -> tuple[str, str]:
    text, author = text.strip(), author.strip()
    if not text or len(text) > MAX_TEXT:
        raise HttpError(400, f"text must be a non-empty string of at most {MAX_TEXT} characters")
    if not author or len(author) > MAX_AUTHOR or not author.isprintable():
        raise HttpError(400, f"author must be a display name of 1 to {MAX_AUTHOR} printable characters")
    return text, author


def conversation_view(session: dict[str, Any], timeout: int, now: datetime) -> dict[str, Any]:
    """One row of the conversations list."""
    context = (session.get("metadata") or {}).get("context") or {}
    return {
        "sessionId": session["sessionId"], "userId": session["userId"], "status": status_of(session, now, timeout),
        "sessionStatus": session.get("status"), "channel": context.get("channel"),
        "messageCount": int(context.get("messageCount", 0)), "lastMessageAt": session.get("lastMessageAt"),
        "createdAt": session.get("createdAt"), "handoff": session.get("handoff"),
        "optedOut": bool(session.get("optedOut")),
    }


def fact_text(value: Any) -> str:
    """A fact's value as one line (appointments and orders are maps)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    return str(value)


def fact_kind(kind: str) -> str:
    if kind not in FACT_KINDS:
        raise HttpError(400, f"unknown fact kind {kind!r}; known: {', '.join(FACT_KINDS)}")
    return kind


def _fact_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HttpError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def _refuse_value(kind: str) -> HttpError:
    hint = _VALUE_HINTS.get(kind, f"a non-empty string of at most {LIMITS.get(kind, VALUE_LIMIT)} characters")
    return HttpError(400, f"value is not a valid {kind}: expected {hint}")


def owner_value(kind: str, value: Any, timezone: str) -> Any:
    """The value as the fold will store it, or HttpError(400): what `clean_value` refuses, an
    unparseable phone (which the fold would keep as written), an email without a domain, an
    over-long text (which the fold would cut) and an appointment already past (which it ignores)."""
    if isinstance(value, str) and len(value.strip()) > LIMITS.get(kind, VALUE_LIMIT):
        raise HttpError(400, f"value over {LIMITS.get(kind, VALUE_LIMIT)} characters")
    cleaned = clean_value(kind, value, timezone)
    if cleaned is None or (kind == "email" and not _EMAIL.fullmatch(cleaned)) \
            or (kind == "language" and not _LANGUAGE.fullmatch(cleaned)):
        raise _refuse_value(kind)
    return cleaned


def _held_by_fold(event: Event, timezone: str) -> bool:
    """Whether the fold, applied to a customer with no facts, would make the event's fact current
    (it ignores an appointment over before the event)."""
    state = apply_facts(empty_facts(event.businessId, event.userId), event.with_seq(1), timezone)
    return any(f["kind"] == event.payload.kind for f in current_facts(state))  # type: ignore[union-attr]


def facts_view(state: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The customer's facts: those current now; per kind, those that ended (superseded,
    retracted, or an appointment whose time has passed)."""
    current = current_facts(state, now)
    kept = {id(f) for f in current}
    superseded: dict[str, list[dict[str, Any]]] = {}
    for kind, entry in sorted(state.get("facts", {}).items()):
        lapsed = [f for f in entry.get("current", []) if id(f) not in kept]
        ended = [*entry.get("superseded", []), *lapsed]
        if ended:
            superseded[kind] = ended
    return {"businessId": state["businessId"], "userId": state["userId"], "facts": current,
            "superseded": superseded, "asOfSeq": int(state.get("lastSeq", 0))}
