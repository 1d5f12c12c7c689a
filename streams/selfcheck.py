"""The seed's `test-sessions-and-messages`: a check of a deployment's sessions and messages.

It appends two messages of a throw-away customer to the log, applies them with the real
processor (offline responder), and checks what the seed's script checked: a session is created,
its messages are stored, they come back through the sessionId-timestamp-index and the
businessId-timestamp-index, and the active session is found through the businessId-userId-index
(or its scan fallback). The customer is erased afterwards (`forget`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentstream import idempotency as keys
from agentstream.adapters.llm import OfflineResponder
from agentstream.events import Event, new_event
from agentstream.streams.conversations import ConversationProcessor
from agentstream.streams.forget import ForgetConfig, ForgetStores, forget
from agentstream.adapters.channels.rest import REST

ActiveSession = Callable[[str, str], Awaitable[dict[str, Any] | None]]
MESSAGES = ("Bună ziua, aș dori o programare pentru tuns.", "La ce oră închideți azi?")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


async def _no_publish(reply: Event, first: bool = False) -> None:
    """The check's replies stay in the log; nothing is delivered."""


async def check_sessions_and_messages(stores: ForgetStores, active_session: ActiveSession, settings: ForgetConfig,
                                      business_id: str = "demo-salon", keep: bool = False) -> list[Check]:
    """Run the check; every item of the result should be ok. `active_session(business, user)`:
    the customer's active session as the seed looked it up (businessId-userId-index)."""
    user_id = f"selfcheck-{uuid.uuid4().hex[:8]}"
    store, projections = stores.log, stores.states
    processor = ConversationProcessor(store, projections, stores.directory, OfflineResponder(),
                                      _no_publish, default_idle_minutes=settings.session_idle_minutes)
    for n, text in enumerate(MESSAGES):
        event = new_event("MessageReceived", business_id=business_id, user_id=user_id, channel=REST.name,
                          payload={"content": text, "externalId": f"{user_id}-{n}", "replyTo": {"rest": "poll"}})
        appended = (await store.append(event, external_id=keys.selfcheck(user_id, n))).event
        await processor.handle(appended)
        for later in await store.read(appended.streamId, after_seq=appended.seq):
            await processor.handle(later)
    session = await active_session(business_id, user_id)
    checks = [Check("session created and active (businessId-userId-index)", bool(session and session["status"] == "active"),
                    session["sessionId"] if session else "no active session")]
    in_session = await projections.session_messages(session["sessionId"]) if session else []
    kinds = [m["type"] for m in in_session]
    checks.append(Check("messages stored in the session (sessionId-timestamp-index)", kinds == ["user", "agent"] * 2,
                        f"{len(in_session)} messages: {', '.join(kinds)}"))
    by_business = await projections.customer_messages(business_id, user_id)
    checks.append(Check("messages found by business (businessId-timestamp-index)", len(by_business) == len(in_session) == 4,
                        f"{len(by_business)} messages"))
    memory = await projections.load_memory(business_id, user_id) or {}
    length = (memory.get("sessionContext") or {}).get("conversationLength")
    checks.append(Check("rolling memory updated (rag-dynamic-user)", length == 4, f"conversationLength={length}"))
    if not keep:
        await forget(stores, settings, business_id, user_id)
    return checks
