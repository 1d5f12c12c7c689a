"""An inbound's one reply: found in the log, or drafted (the model asked once) and appended;
and what folding a handoff or an outbound message sets off."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from agentstream import idempotency as keys
from agentstream import metrics
from agentstream.adapters.dynamo.event_store import event_from_item
from agentstream.adapters.llm import Answer, Responder
from agentstream.adapters.signals import Signals
from agentstream.events import OUTBOUND_TYPES, Event, HandoffRequested, MessageReceived, derive_id, new_event, reply_event_id
from agentstream.projections import optout
from agentstream.projections.reminders import reminder_stands
from agentstream.projections.base import Put
from agentstream.projections.context import ReplyContext, build_prompt
from agentstream.projections.handoff import OWNER_REPLIED
from agentstream.streams.batch import Batch, PendingReply
from agentstream.projections.media_notes import MediaOutcome
from agentstream.streams.clock import SYSTEM_CLOCK
from agentstream.streams.media_wait import MediaWait
from agentstream.streams.ports import Clock, Directory, EventLog
from agentstream.streams.booking_context import with_free_slots
from agentstream.streams.spend import SpendMeter
from agentstream.streams.reply_policy import (
    REPLIES_FOLLOW, States, canned_answer, handoff_notice, handoff_request, hands_off, published_when_folded,
    reply_context, reply_draft, reply_key,
)

log = structlog.get_logger(__name__)
REPLY_LOOKAHEAD = 4  # events after an inbound read to find its reply (and the head) in one query
MAX_UNSENT = 256  # replies kept for the next try of an event whose one-transaction write failed


class PublishReply(Protocol):
    """Puts an outbound event on `agent.replies.v1`; `first`: a reply this call has just logged,
    so never published (nor delivered) before: delivery need not look for its record."""

    def __call__(self, reply: Event, first: bool = False) -> Awaitable[None]: ...


OnHandoff = Callable[[Event], Awaitable[None]]  # tells the owner (topic agent.handoffs.v1, webhook); must not raise


class Replier:
    """Answers inbounds at most once each and publishes what goes to customers."""

    def __init__(self, store: EventLog, directory: Directory, responder: Responder, publish: PublishReply,
                 on_handoff: OnHandoff | None = None, prompt_budget_chars: int = 12_000, memory: int = 20_000,
                 clock: Clock = SYSTEM_CLOCK, media_wait: MediaWait | None = None,
                 spend: SpendMeter | None = None, signals: Signals | None = None) -> None:
        """`spend`: the budget check before each model call and the spend each reply adds (none: no
        ceiling); `signals`: typing and the reply's pieces as the model writes them (none: not shown)."""
        self._store = store
        self._media_wait = media_wait
        self.spend = spend
        self._directory = directory
        self.responder = responder
        self.publish = publish
        self.on_handoff = on_handoff
        self._budget = prompt_budget_chars
        self._memory = memory
        self._clock = clock
        self.signals = signals  # typing and the reply's text as it is written (agent.signals.v1)
        self._seen: OrderedDict[str, int] = OrderedDict()  # per stream: the highest seq the consumer has
        self._unsent: OrderedDict[str, Event] = OrderedDict()  # per inbound: a reply whose one-transaction write failed

    def saw(self, stream: str, seq: int) -> None:
        """The consumer holds the conversation's event `seq` (maybe queued behind the one being
        answered): a reply appended meanwhile reads the head first instead of guessing it stale."""
        if seq > self._seen.get(stream, 0):
            self._seen[stream] = seq
            self._seen.move_to_end(stream)
            if len(self._seen) > self._memory:
                self._seen.popitem(last=False)

    async def reply(self, inbound: MessageReceived, states: States, info: dict[str, Any],
                    unanswered: bool = False, batch: Batch | None = None) -> tuple[Event, bool]:
        """The one reply to an inbound message (and whether this call appended it): the model is
        asked only if the log has none. `unanswered`: known to have none, and to be the head as
        far as this process knows (no read needed). With `batch`, a reply that goes right after
        its inbound is left in it (`Batch.reply`), to be appended with the projections in one
        transaction and published after it (`BatchWriter.flush`)."""
        kept = self._unsent.pop(inbound.eventId, None)
        media: MediaOutcome | None = None
        media_read_to: int | None = None
        if self._media_wait is not None and self._media_wait.applies(inbound):
            waited = await self._media_wait.wait(self._store, inbound)
            reply, head, media, media_read_to = waited.reply, waited.head, waited.outcome, waited.read_to
        else:
            reply, head = (None, inbound.seq) if unanswered else await self._logged_reply(inbound)
        if reply is not None:
            await self.publish(reply)
            await self._hand_off_if_asked(inbound, reply)
            return reply, False
        draft = kept or await self._draft(inbound, states, info, media, media_read_to=media_read_to)
        if head is not None and self._seen.get(inbound.streamId, 0) > head:
            head = None  # the customer wrote again meanwhile: read the head rather than lose a write to it
        if batch is not None and head == inbound.seq and kept is None and not hands_off(draft) \
                and optout.change(inbound.payload.content, inbound.payload.replyTo) is None:
            batch.reply = PendingReply(draft.with_seq(head + 1), inbound, info, batch.snapshot(states), self.charges(draft, info))
            return batch.reply.reply, False
        reply, new = await self.append_reply(draft, inbound, head)
        await self._hand_off_if_asked(inbound, reply)
        return reply, new

    async def append_reply(self, draft: Event, inbound: MessageReceived, head: int | None = None) -> tuple[Event, bool]:
        """Append `draft` on its own (at most once per inbound) and publish what the log holds:
        the reply, and whether this call appended it."""
        side = self.charges(draft, await self._directory.info(inbound.businessId)) if self.spend else []
        if side:
            appended = await self._store.append_with(draft, side, external_id=reply_key(inbound.eventId), head=head)
        else:
            appended = await self._store.append(draft, external_id=reply_key(inbound.eventId), head=head)
        if not appended.duplicate:
            self.logged(appended.event, inbound)
        await self.publish(appended.event, first=not appended.duplicate)
        return appended.event, not appended.duplicate

    def charges(self, draft: Event, info: dict[str, Any] | None) -> list[Any]:
        """The side items that add what the draft's model call cost to the month's spend."""
        return self.spend.charges(draft, info) if self.spend else []

    def keep_unsent(self, pending: PendingReply) -> None:
        """The reply's one-transaction write failed: the next try appends it on its own first."""
        self._unsent[pending.inbound.eventId] = pending.reply
        while len(self._unsent) > MAX_UNSENT:
            self._unsent.popitem(last=False)

    def logged(self, reply: Event, inbound: MessageReceived) -> None:
        metrics.EVENTS_APPENDED.labels(type="ReplyGenerated", channel=inbound.channel).inc()
        metrics.REPLY_LATENCY.observe(max(0.0, (self._clock.now() - inbound.occurredAt).total_seconds()))
        log.info("worker.reply_appended", eventId=reply.eventId, inReplyTo=inbound.eventId, streamId=inbound.streamId)

    async def publish_again(self, inbound: MessageReceived) -> None:
        """A duplicate of the inbound the projections stop right after: its reply may have gone
        in with them, and its publication died with the process that wrote them (kill -9 between
        the two). Published again, not as a first publication: delivery looks for its record."""
        reply = await self._store.get(inbound.streamId, inbound.seq + 1)
        if reply is not None and reply.type == "ReplyGenerated" and getattr(reply.payload, "inReplyTo", None) == inbound.eventId:
            await self.publish(reply)

    async def handoff_effects(self, event: Event, states: States, puts: dict[str, list[Put]]) -> None:
        """What folding a handoff or an outbound message sets off: a person's message (and the
        handoff notice) goes to agent.replies.v1; a handoff that took effect tells the owner and,
        when the owner took over, the customer (once: the notice's id and record derive from it)."""
        if REPLIES_FOLLOW not in puts:
            return
        if event.type == "ReminderSent":
            if reminder_stands(states.get("reminders"), event.eventId):  # the reminders fold let it stand
                await self.publish(event)
        elif event.type in OUTBOUND_TYPES and event.type != "ReplyGenerated":
            if published_when_folded(event, puts[REPLIES_FOLLOW]) and getattr(event.payload, "content", ""):
                await self.publish(event)
        elif isinstance(event, HandoffRequested) and any(p.table == "sessions" for p in puts[REPLIES_FOLLOW]):
            if self.on_handoff:
                await self.on_handoff(event)
            if event.payload.by == "owner" and event.payload.reason != OWNER_REPLIED:
                draft, key = handoff_notice(event, states, self._clock.now())
                appended = await self._store.append(draft, external_id=key)
                await self.publish(appended.event)

    async def _hand_off_if_asked(self, inbound: MessageReceived, reply: Event) -> None:
        """After the reply to `inbound`: a customer who asked for a person, or a model that could
        not answer (its fallback promises a colleague), hands the conversation to a person."""
        if hands_off(reply):
            draft, key = handoff_request(inbound, reply, self._clock.now())
            await self._store.append(draft, external_id=key)

    async def opt_change_of(self, inbound: MessageReceived) -> None:
        """A customer who said stop (or start), or whose vendor signalled it: CustomerOptedOut
        (CustomerOptedIn), once per message, after its reply."""
        found = optout.change(inbound.payload.content, inbound.payload.replyTo)
        if found is None:
            return
        which, keyword = found
        draft = new_event("CustomerOptedOut" if which == "out" else "CustomerOptedIn", occurred_at=inbound.occurredAt,
                          event_id=derive_id("opt", inbound.eventId), business_id=inbound.businessId,
                          user_id=inbound.userId, location_id=inbound.locationId, channel=inbound.channel,
                          payload={"sourceEventId": inbound.eventId, "by": "vendor" if keyword.startswith("vendor:") else "customer",
                                   "keyword": keyword})
        await self._store.append(draft, external_id=keys.opt_change(inbound.eventId))

    async def _draft(self, inbound: MessageReceived, states: States, info: dict[str, Any],
                     media: MediaOutcome | None = None, burst: Sequence[MessageReceived] = (),
                     media_read_to: int | None = None) -> Event:
        """The model's reply to `inbound` (the last of `burst`, if given) as an event, not yet in the
        log; `media` the media events found up to `media_read_to` (none: none read)."""
        ctx = await self._context(inbound, states, info, media, burst)
        sent = build_prompt(ctx, self._budget)
        on_piece = None
        if self.signals is not None:
            signals, reply_id = self.signals, reply_event_id((list(burst) or [inbound])[0].eventId)
            await signals.typing(inbound)

            async def on_piece(text: str) -> None:
                await signals.delta(inbound, reply_id, text)
        answer = await self._answer(ctx, inbound, info, on_piece)
        return reply_draft(inbound, states, answer, sent, self._versions(inbound, info), self._clock.now(), burst,
                           media_read_to, ctx.extra.get("images", ()))

    async def draft_burst(self, burst: Sequence[MessageReceived], states: States, info: dict[str, Any]) -> Event:
        """The model's one reply to a burst of inbounds (states just after the last), not yet in the log."""
        return await self._draft(burst[-1], states, info, burst=burst)

    async def hand_off_if_asked(self, inbound: MessageReceived, reply: Event) -> None:
        await self._hand_off_if_asked(inbound, reply)

    async def typing(self, inbound: MessageReceived) -> None:
        """Show the customer that a reply is being prepared (a burst waiting for quiet)."""
        if self.signals is not None:
            await self.signals.typing(inbound)

    async def _answer(self, ctx: ReplyContext, inbound: MessageReceived, info: dict[str, Any], on_piece: Any = None) -> Answer:
        """The model's answer (its pieces to `on_piece` as they come), or, to a customer asking for
        a person (or of a business whose model budget is spent), that one will answer."""
        canned = canned_answer(ctx)
        if canned is None and self.spend is not None:
            canned = await self.spend.gate(inbound, info, ctx.language, self._clock.now())
        if canned is not None:
            return canned
        return await (self.responder.answer(ctx, on_piece=on_piece) if on_piece else self.responder.answer(ctx))

    async def _logged_reply(self, inbound: MessageReceived) -> tuple[Event | None, int | None]:
        """The inbound's reply if the log has it; else None and the stream's head (None: not read).

        A reply follows its inbound in the same stream, nearly always within a few events, so
        one query of the events after the inbound answers both questions; past those, the
        reply's idempotency record does. Only the reply is parsed: an event this build cannot
        read further on is its own record's business, not this one's."""
        later = await self._store.read_items(inbound.streamId, after_seq=inbound.seq, limit=REPLY_LOOKAHEAD)
        for item in later:
            if item.get("type") == "ReplyGenerated" and (item.get("payload") or {}).get("inReplyTo") == inbound.eventId:
                return event_from_item(item), None
        if len(later) < REPLY_LOOKAHEAD:
            return None, int(later[-1]["seq"]) if later else inbound.seq
        return await self._store.find(inbound.businessId, reply_key(inbound.eventId)), None

    async def _context(self, inbound: MessageReceived, states: States, info: dict[str, Any],
                       media: MediaOutcome | None = None, burst: Sequence[MessageReceived] = ()) -> ReplyContext:
        business_type = str(info.get("businessType", "general"))
        instructions = await self._directory.system_instructions(business_type)
        rag = await self._directory.rag_entries(inbound.businessId)
        images = self._media_wait is not None and self._media_wait.images_as_input
        ctx = reply_context(inbound, states, info, instructions, rag, media, images, burst)
        return await with_free_slots(self._store, ctx, inbound, info, self._clock.now())

    def _versions(self, inbound: MessageReceived, info: dict[str, Any]) -> dict[str, str]:
        """The versions of the business data the prompt was built from (the config history's)."""
        d, business_type = self._directory, str(info.get("businessType", "general"))
        return {"businessInfo": d.version("info", inbound.businessId),
                "systemInstructions": d.version("system", business_type), "rag": d.version("rag", inbound.businessId)}
