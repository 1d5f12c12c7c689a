"""The event envelope of `agent.events.v1` and its payloads.

Events are immutable facts in the log. Every consumer parses them with `parse_event`,
which upcasts older schema versions and refuses unknown ones with a clear error.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from agentstream import channel_specs

SCHEMA_VERSION = 1


def load_channels() -> tuple[str, ...]:
    """The channel names an event's `channel` may have: the generated catalog of this build
    ("system", for events no customer sent, belongs to no provider)."""
    return channel_specs.names()


CHANNELS: tuple[str, ...] = load_channels()
_KNOWN_CHANNELS = frozenset(CHANNELS)
_NAMESPACE = uuid.UUID("6f1c1f2e-4b7a-4d55-9a43-5a1f0e7d2c11")


IMPORTED = "imported"  # replyTo marker of messages imported from history: never answered


class UnknownSchemaVersion(ValueError):
    """An event of a schemaVersion (or a type) this build cannot read: a newer build wrote it.
    A consumer stops and says so (the fix is an upgrade); it never drops it or DLQs it."""


class UnknownEventType(UnknownSchemaVersion):
    """An event of a type this build does not know."""


class UnknownChannel(UnknownSchemaVersion):
    """An event of a channel this build does not know (a newer build registered it)."""


def derive_id(*parts: str) -> str:
    """A deterministic id from its parts (same parts, same id, across processes and replays)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def stream_id(business_id: str, user_id: str) -> str:
    """The conversation stream of one customer of one business."""
    return f"{business_id}#{user_id}"


def now_ms() -> int:
    """Epoch milliseconds: lease and claim expiry times."""
    return int(time.time() * 1000)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, the one timestamp format in the log."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attachment(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str | None = None
    url: str | None = None
    contentType: str | None = None
    name: str | None = None
    size: int | None = None


MessageKind = Literal["text", "reaction", "button", "location", "contact", "unsupported", "image", "audio", "document"]
MESSAGE_KINDS: tuple[str, ...] = MessageKind.__args__  # type: ignore[attr-defined]


class MessageReceivedPayload(_Payload):
    content: str = Field(description=(
        "text: what the customer wrote; reaction: the emoji (empty: the reaction was removed); button: the title "
        "tapped; location, contact: readable text (\"Location: 44.43, 26.10 — Str. X\"); unsupported: a description"))
    kind: MessageKind = Field("text", description=(
        "v2: what the customer sent; a location or contact that came with text is kind text; v3: image, audio "
        "(a voice note) and document, the vendor's reference to the file in attachments (content: the caption)"))
    payloadId: str | None = Field(None, description="v2: the id or payload of the button, quick reply or postback tapped")
    reactsTo: str | None = Field(None, description="v2: the eventId of the message a reaction is to, when known")
    externalId: str | None = None
    contentType: str = "text/plain"
    attachments: list[Attachment] = Field(default_factory=list)
    replyTo: dict[str, str] = Field(default_factory=dict, description="channel addressing for the answer")


class Usage(_Payload):
    promptTokens: int = 0
    completionTokens: int = 0


class TemplateUse(_Payload):
    """An approved template as sent: Meta's name and/or Twilio's content SID, its language and parameters."""

    name: str | None = None
    contentSid: str | None = None
    language: str
    params: list[str] = Field(default_factory=list)


class OutboundSend(_Payload):
    """How an outbound message goes out, decided when it was appended (replay and delivery read it)."""

    window: Literal["open", "closed", "none"] = Field(description=(
        "the channel's messaging window when appended: open, closed, or none (the channel has no window)"))
    template: TemplateUse | None = Field(None, description="outside the window: the approved template sent instead")
    tag: str | None = Field(None, description="outside the window on Messenger/Instagram: the message tag (HUMAN_AGENT)")


def _send_field() -> Any:
    return Field(None, description="how it goes out (absent: free text, as before this field)")


class ReplyGeneratedPayload(_Payload):
    content: str
    inReplyTo: str
    sessionId: str
    model: str
    latencyMs: int = 0
    usage: Usage = Field(default_factory=Usage)
    fallback: bool = False
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the inbound's replyTo addressing")
    promptHash: str = Field("", description="v2: SHA-256 of the prompt sent (empty: unknown, e.g. upcast from v1)")
    versions: dict[str, str] = Field(default_factory=dict, description=(
        "v2: the versions of businessInfo, systemInstructions and rag the prompt was built from"))
    send: OutboundSend | None = _send_field()
    coversUpToSeq: int = Field(0, ge=0, description=(
        "v3: the seq of the last inbound this reply covers (from inReplyTo's on); 0: inReplyTo alone (upcast from v2)"))
    covers: list[str] = Field(default_factory=list, description=(
        "v3: the channel's own ids (externalId; the widget's clientMessageId) of the inbounds covered, in order"))
    droppedUsage: Usage = Field(default_factory=Usage, description=(
        "v3: the tokens of drafts dropped because the customer wrote again while the model was asked (paid for)"))
    mediaUpToSeq: int = Field(0, ge=0, description=(
        "v4: the prompt used the media events about the inbound's files logged up to this seq (what the reply's wait "
        "had read); 0: not recorded (upcast from v3): those logged before the reply"))
    imagesGiven: list[str] | None = Field(None, description=(
        "v5: the object keys of the kept photos the prompt gave the model as images ([]: none; the model took none or "
        "there was none to give); null: not recorded (upcast from v4)"))


class ReplyDeliveredPayload(_Payload):
    replyEventId: str
    externalId: str | None = None
    attempts: int = 1


class DeliveryFailedPayload(_Payload):
    replyEventId: str
    error: str
    attempts: int = 1


ReplyStatus = Literal["delivered", "read", "failed"]


class ReplyStatusReportedPayload(_Payload):
    """What the vendor says became of a message we sent (our own record of sending it is ReplyDelivered)."""

    replyEventId: str = Field(description="the outbound event (a reply, a person's message, a notice or a nudge)")
    status: ReplyStatus
    at: str = Field(description="when the vendor says it happened: ISO-8601 UTC")
    externalId: str = Field(description="the vendor's id of the message")
    error: str | None = Field(None, max_length=1000, description="the vendor's reason, for failed")

    @field_validator("at")
    @classmethod
    def _iso_utc(cls, v: str) -> str:
        try:
            ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"at must be an ISO-8601 time, got {v!r}") from None
        if ts.utcoffset() is None or ts.utcoffset().total_seconds() != 0:
            raise ValueError(f"at must be in UTC, got {v!r}")
        return v


class SessionEndPayload(_Payload):
    sessionId: str
    reason: str = ""


FactKind = Literal["name", "phone", "email", "address", "language", "appointment", "order"]
FACT_KINDS: tuple[str, ...] = FactKind.__args__  # type: ignore[attr-defined]
# Single-valued kinds carry a string; multi-valued kinds (appointment, order) a flat map.
FactValue = Union[str, dict[str, Union[str, int, bool, None]]]


class ExtractedFact(_Payload):
    kind: FactKind
    value: FactValue


class FactCorrectedPayload(_Payload):
    kind: FactKind
    value: FactValue
    source: Literal["owner", "corrected"] = Field(
        "owner", description="owner: the business; corrected: the customer, through the API")


class FactRetractedPayload(_Payload):
    kind: FactKind
    value: FactValue | None = Field(None, description="only this value; all current values of the kind if absent")
    source: Literal["owner", "corrected"] = "owner"


class FactsExtractedPayload(_Payload):
    facts: list[ExtractedFact] = Field(max_length=20)
    model: str
    sourceEventId: str = Field(description="the MessageReceived the facts were read from")
    usage: Usage = Field(default_factory=Usage, description="v2: the model call's tokens (what it spent)")


HandoffBy = Literal["customer", "owner", "responder", "system"]  # v2 added system (the spend ceiling)


class HandoffRequestedPayload(_Payload):
    """The conversation is handed to a person: inbounds after this seq get no AI reply."""

    sessionId: str
    by: HandoffBy
    reason: str = Field("", max_length=500)


class HandoffReleasedPayload(_Payload):
    """The conversation is handed back to the AI."""

    sessionId: str
    by: Literal["owner", "timeout", "system"] = "owner"
    reason: str = Field("", max_length=500)


class OwnerRepliedPayload(_Payload):
    """A person of the business wrote to the customer (delivered like a reply)."""

    sessionId: str
    content: str = Field(min_length=1)
    author: str = Field(min_length=1, max_length=100, description="the display name of the person")
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the last inbound's replyTo addressing")
    send: OutboundSend | None = _send_field()


class HandoffNoticeSentPayload(_Payload):
    """The customer is told, in their language, that a person will answer (delivered like a reply)."""

    sessionId: str
    content: str
    handoffEventId: str
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the last inbound's replyTo addressing")
    send: OutboundSend | None = _send_field()


class NudgeSentPayload(_Payload):
    """The one idle nudge of a session ("are you still there?"), appended by the session timer;
    delivered like a reply only when the conversation fold lets it stand."""

    sessionId: str
    content: str = Field(min_length=1)
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the last inbound's replyTo addressing")
    send: OutboundSend | None = _send_field()


class ReminderSentPayload(_Payload):
    """A reminder of a confirmed appointment, appended by the reminder timer; delivered like a reply
    only when the reminders fold lets it stand."""

    appointmentId: str = Field(min_length=1)
    minutesBefore: int = Field(ge=1, description="the business's remindBeforeMinutes value it is for")
    startsAt: str = Field(description="the appointment's start it reminds of (ISO UTC)")
    content: str = Field(min_length=1)
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the appointment's addressing")
    sessionId: str = ""
    send: OutboundSend | None = _send_field()


class ReminderMissedPayload(_Payload):
    """A planned reminder that did not go out before its appointment started (the reminder timer
    was not running at its time): appended by the timer so the reminders fold drops it; nothing
    is sent to the customer."""

    appointmentId: str = Field(min_length=1)
    minutesBefore: int = Field(ge=1, description="the business's remindBeforeMinutes value it was for")
    startsAt: str = Field(description="the appointment's start (ISO UTC), passed when this was appended")
    dueAt: str = Field(description="when the reminder was due (ISO UTC)")


class CustomerOptPayload(_Payload):
    """The customer opted out of business-started messages (nudges, reminders) or back in."""

    sourceEventId: str = Field(description="the MessageReceived that said it ('' for a vendor's signal sent without a message)")
    by: Literal["customer", "vendor"] = Field(description="customer: a word they wrote; vendor: the vendor's signal")
    keyword: str = Field(max_length=100, description="the word, or vendor:<signal>")


class EventSkippedPayload(_Payload):
    seq: int = Field(ge=1, description="the seq of the event of this stream that is skipped (it failed every attempt)")
    stage: str = Field(description="where it failed, e.g. process")
    error: str = Field(max_length=2000, description="the last error, shortened")


class SkipRevokedPayload(_Payload):
    seq: int = Field(ge=1, description="the seq of the formerly skipped event, to be applied again")


class MediaStoredPayload(_Payload):
    """A customer's file, fetched from the vendor and kept in the object store (never the bytes here)."""

    sourceEventId: str = Field(description="the MessageReceived the file came with")
    index: int = Field(0, ge=0, description="which of its attachments")
    key: str = Field(description="the object's key in the media bucket: the customer's stream and the content hash")
    contentType: str
    size: int = Field(ge=0)
    sha256: str
    kind: Literal["image", "audio", "document"]


class MediaRefusedPayload(_Payload):
    """A customer's file not accepted: too large for its kind, or of a type not allowed."""

    sourceEventId: str
    index: int = Field(0, ge=0)
    reason: str = Field(max_length=500)
    kind: str = ""
    contentType: str = ""
    size: int | None = None


class MediaFailedPayload(_Payload):
    """A customer's file that could not be fetched (or transcribed) after every attempt."""

    sourceEventId: str
    index: int = Field(0, ge=0)
    error: str = Field(max_length=1000)
    attempts: int = Field(1, ge=1)
    stage: Literal["download", "transcription"] = "download"


class MediaTranscribedPayload(_Payload):
    """What a voice note says, as the transcription model heard it (replay never calls a model)."""

    sourceEventId: str
    index: int = Field(0, ge=0)
    text: str = Field(max_length=16_000)
    model: str
    usage: dict[str, int] = Field(default_factory=dict)


AppointmentBy = Literal["customer", "owner", "responder"]


class _AppointmentPayload(_Payload):
    appointmentId: str = Field(min_length=1, description="derived from the customer's message that asked for it")
    by: AppointmentBy
    content: str = Field("", max_length=4000, description="the message to the customer, delivered like a reply (empty: none)")
    deliverTo: dict[str, str] = Field(default_factory=dict, description="the last inbound's replyTo addressing")
    sessionId: str = Field("", description="the customer's session when it was appended (empty: none active)")
    sourceEventId: str | None = Field(None, description="the customer's message this comes from, if any")
    send: OutboundSend | None = _send_field()


class AppointmentRequestedPayload(_AppointmentPayload):
    """The customer asked for an appointment (read from their message by the extractor)."""

    by: Literal["customer"] = "customer"
    at: str = Field(description="local ISO date-time with the business's offset, or a date alone (a day-only request)")
    service: str | None = Field(None, max_length=200)


class AppointmentProposedPayload(_AppointmentPayload):
    """Another time is offered for the appointment."""

    at: str = Field(description="local ISO date-time with the business's offset")
    service: str | None = Field(None, max_length=200)


class AppointmentConfirmedPayload(_AppointmentPayload):
    """The appointment holds its places from `at` for `minutes`."""

    at: str = Field(description="local ISO date-time with the business's offset")
    minutes: int = Field(ge=1, le=24 * 60, description="how long it lasts (the service's duration, or one slot)")
    service: str | None = Field(None, max_length=200)


class AppointmentDeclinedPayload(_AppointmentPayload):
    reason: str = Field("", max_length=500)


class AppointmentCancelledPayload(_AppointmentPayload):
    reason: str = Field("", max_length=500)


class AppointmentNoShowPayload(_AppointmentPayload):
    by: Literal["owner"] = "owner"


PAYLOADS: dict[str, type[_Payload]] = {
    "MessageReceived": MessageReceivedPayload,
    "ReplyGenerated": ReplyGeneratedPayload,
    "ReplyDelivered": ReplyDeliveredPayload,
    "DeliveryFailed": DeliveryFailedPayload,
    "ReplyStatusReported": ReplyStatusReportedPayload,
    "SessionExpired": SessionEndPayload,
    "SessionResolved": SessionEndPayload,
    "SessionClosed": SessionEndPayload,
    "FactCorrected": FactCorrectedPayload,
    "FactRetracted": FactRetractedPayload,
    "FactsExtracted": FactsExtractedPayload,
    "HandoffRequested": HandoffRequestedPayload,
    "HandoffReleased": HandoffReleasedPayload,
    "OwnerReplied": OwnerRepliedPayload,
    "HandoffNoticeSent": HandoffNoticeSentPayload,
    "NudgeSent": NudgeSentPayload,
    "CustomerOptedOut": CustomerOptPayload,
    "ReminderSent": ReminderSentPayload,
    "ReminderMissed": ReminderMissedPayload,
    "CustomerOptedIn": CustomerOptPayload,
    "EventSkipped": EventSkippedPayload,
    "SkipRevoked": SkipRevokedPayload,
    "MediaStored": MediaStoredPayload, "MediaRefused": MediaRefusedPayload, "MediaFailed": MediaFailedPayload, "MediaTranscribed": MediaTranscribedPayload,
    **{f"Appointment{n}": globals()[f"Appointment{n}Payload"] for n in ("Requested", "Proposed", "Confirmed", "Declined", "Cancelled", "NoShow")},
}


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    eventId: str
    streamId: str
    seq: int = Field(ge=0, description="0 until the event store assigns head + 1")
    schemaVersion: Literal[1] = SCHEMA_VERSION
    occurredAt: datetime
    businessId: str = Field(min_length=1)
    locationId: str | None = None
    userId: str = Field(min_length=1)
    channel: str = Field(description="a registered channel name: the list in agentstream/data/channels.json")

    @field_validator("channel")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in _KNOWN_CHANNELS:
            raise ValueError(f"channel {v!r} is not registered (known: {', '.join(CHANNELS)})")
        return v

    @field_validator("occurredAt")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("occurredAt must carry a time zone")
        return v.astimezone(timezone.utc)

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["occurredAt"] = iso(self.occurredAt)
        return data

    def with_seq(self, seq: int) -> "Event":
        return self.model_copy(update={"seq": seq})  # type: ignore[return-value]


class MessageReceived(_Envelope):
    type: Literal["MessageReceived"] = "MessageReceived"
    schemaVersion: Literal[3] = 3  # type: ignore[assignment]  # v2 added kind, payloadId and reactsTo; v3 the media kinds
    payload: MessageReceivedPayload


class ReplyGenerated(_Envelope):
    type: Literal["ReplyGenerated"] = "ReplyGenerated"
    schemaVersion: Literal[5] = 5  # type: ignore[assignment]  # v2 added promptHash and versions, v3 what a burst covers, v4 mediaUpToSeq, v5 imagesGiven
    payload: ReplyGeneratedPayload


class ReplyDelivered(_Envelope):
    type: Literal["ReplyDelivered"] = "ReplyDelivered"
    payload: ReplyDeliveredPayload


class DeliveryFailed(_Envelope):
    type: Literal["DeliveryFailed"] = "DeliveryFailed"
    payload: DeliveryFailedPayload


class ReplyStatusReported(_Envelope):
    """A vendor's delivery status (delivered, read, failed) of a message we sent."""

    type: Literal["ReplyStatusReported"] = "ReplyStatusReported"
    payload: ReplyStatusReportedPayload


class SessionExpired(_Envelope):
    type: Literal["SessionExpired"] = "SessionExpired"
    payload: SessionEndPayload


class SessionResolved(_Envelope):
    type: Literal["SessionResolved"] = "SessionResolved"
    payload: SessionEndPayload


class SessionClosed(_Envelope):
    type: Literal["SessionClosed"] = "SessionClosed"
    payload: SessionEndPayload


class FactCorrected(_Envelope):
    """The owner or the customer (through the API) set a fact of the customer."""

    type: Literal["FactCorrected"] = "FactCorrected"
    payload: FactCorrectedPayload


class FactRetracted(_Envelope):
    """A fact of the customer no longer holds (closed with no successor)."""

    type: Literal["FactRetracted"] = "FactRetracted"
    payload: FactRetractedPayload


class FactsExtracted(_Envelope):
    """Facts a model read from a message (logged, so a replay never calls a model)."""

    type: Literal["FactsExtracted"] = "FactsExtracted"
    schemaVersion: Literal[2] = 2  # type: ignore[assignment]  # v2 added usage
    payload: FactsExtractedPayload


class HandoffRequested(_Envelope):
    """The customer, the owner or the responder handed the conversation to a person."""

    type: Literal["HandoffRequested"] = "HandoffRequested"
    schemaVersion: Literal[2] = 2  # type: ignore[assignment]  # v2 added by "system"
    payload: HandoffRequestedPayload


class HandoffReleased(_Envelope):
    """The conversation went back to the AI (the owner released it, or the handoff timed out)."""

    type: Literal["HandoffReleased"] = "HandoffReleased"
    payload: HandoffReleasedPayload


class OwnerReplied(_Envelope):
    """A person's message to the customer, sent through the customer's channel."""

    type: Literal["OwnerReplied"] = "OwnerReplied"
    payload: OwnerRepliedPayload


class HandoffNoticeSent(_Envelope):
    """'A person will answer you': sent once when the owner takes a conversation over."""

    type: Literal["HandoffNoticeSent"] = "HandoffNoticeSent"
    payload: HandoffNoticeSentPayload


class NudgeSent(_Envelope):
    """A quiet session's one nudge, sent while the business is open (the fold decides if it stands)."""

    type: Literal["NudgeSent"] = "NudgeSent"
    payload: NudgeSentPayload


class ReminderSent(_Envelope):
    """A reminder before a confirmed appointment (the reminders fold decides if it stands)."""

    type: Literal["ReminderSent"] = "ReminderSent"
    payload: ReminderSentPayload


class ReminderMissed(_Envelope):
    """A reminder not sent: its appointment had started before the timer got to it."""

    type: Literal["ReminderMissed"] = "ReminderMissed"
    payload: ReminderMissedPayload


class CustomerOptedOut(_Envelope):
    """The customer said stop: no nudge and no reminder from then on."""

    type: Literal["CustomerOptedOut"] = "CustomerOptedOut"
    payload: CustomerOptPayload


class CustomerOptedIn(_Envelope):
    """The customer said start again after stopping."""

    type: Literal["CustomerOptedIn"] = "CustomerOptedIn"
    payload: CustomerOptPayload


class EventSkipped(_Envelope):
    """An event of this stream failed every attempt and went to the DLQ: the folds skip it."""

    type: Literal["EventSkipped"] = "EventSkipped"
    payload: EventSkippedPayload


class SkipRevoked(_Envelope):
    """A skipped event is to be applied after all (`agentstream dlq retry`, after a fix)."""

    type: Literal["SkipRevoked"] = "SkipRevoked"
    payload: SkipRevokedPayload


class MediaStored(_Envelope):
    """A customer's file kept in the media bucket."""

    type: Literal["MediaStored"] = "MediaStored"
    payload: MediaStoredPayload


class MediaRefused(_Envelope):
    """A customer's file not accepted (its size or type)."""

    type: Literal["MediaRefused"] = "MediaRefused"
    payload: MediaRefusedPayload


class MediaFailed(_Envelope):
    """A customer's file that could not be fetched or transcribed."""

    type: Literal["MediaFailed"] = "MediaFailed"
    payload: MediaFailedPayload


class MediaTranscribed(_Envelope):
    """A voice note's transcript."""

    type: Literal["MediaTranscribed"] = "MediaTranscribed"
    payload: MediaTranscribedPayload


class AppointmentRequested(_Envelope):
    """A customer asked for an appointment (its id derives from their message)."""

    type: Literal["AppointmentRequested"] = "AppointmentRequested"
    payload: AppointmentRequestedPayload


class AppointmentProposed(_Envelope):
    """The owner (or the responder) offered the customer another time."""

    type: Literal["AppointmentProposed"] = "AppointmentProposed"
    payload: AppointmentProposedPayload


class AppointmentConfirmed(_Envelope):
    """The appointment is booked: it holds its places (the confirmation's transaction took them)."""

    type: Literal["AppointmentConfirmed"] = "AppointmentConfirmed"
    payload: AppointmentConfirmedPayload


class AppointmentDeclined(_Envelope):
    """The owner turned the request down."""

    type: Literal["AppointmentDeclined"] = "AppointmentDeclined"
    payload: AppointmentDeclinedPayload


class AppointmentCancelled(_Envelope):
    """The customer or the owner cancelled it (a confirmed one frees its places)."""

    type: Literal["AppointmentCancelled"] = "AppointmentCancelled"
    payload: AppointmentCancelledPayload


class AppointmentNoShow(_Envelope):
    """The owner marked that the customer did not come."""

    type: Literal["AppointmentNoShow"] = "AppointmentNoShow"
    payload: AppointmentNoShowPayload


Event = Annotated[
    Union[
        MessageReceived,
        ReplyGenerated,
        ReplyDelivered,
        DeliveryFailed,
        ReplyStatusReported,
        SessionExpired,
        SessionResolved,
        SessionClosed,
        FactCorrected,
        FactRetracted,
        FactsExtracted,
        HandoffRequested,
        HandoffReleased,
        OwnerReplied,
        HandoffNoticeSent,
        NudgeSent,
        CustomerOptedOut,
        CustomerOptedIn,
        ReminderSent,
        ReminderMissed,
        EventSkipped,
        SkipRevoked,
        MediaStored, MediaRefused, MediaFailed, MediaTranscribed,
        AppointmentRequested, AppointmentProposed, AppointmentConfirmed, AppointmentDeclined, AppointmentCancelled, AppointmentNoShow,
    ],
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[_Envelope]] = {
    m.model_fields["type"].default: m
    for m in (MessageReceived, ReplyGenerated, ReplyDelivered, DeliveryFailed, ReplyStatusReported, SessionExpired, SessionResolved,
              SessionClosed, FactCorrected, FactRetracted, FactsExtracted, HandoffRequested, HandoffReleased,
              OwnerReplied, HandoffNoticeSent, NudgeSent, EventSkipped, SkipRevoked,
              MediaStored, MediaRefused, MediaFailed, MediaTranscribed,
              AppointmentRequested, AppointmentProposed, AppointmentConfirmed, AppointmentDeclined, AppointmentCancelled, AppointmentNoShow,
              CustomerOptedOut, CustomerOptedIn, ReminderSent, ReminderMissed)
}
# Events carrying a message to the customer: published to agent.replies.v1 and delivered.
OUTBOUND_TYPES: tuple[str, ...] = ("ReplyGenerated", "OwnerReplied", "HandoffNoticeSent", "NudgeSent",
                                   "AppointmentProposed", "AppointmentConfirmed", "AppointmentDeclined", "AppointmentCancelled",
                                   "ReminderSent")
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# (type, schemaVersion) -> function upcasting a raw dict of that version to the next one.
UPCASTERS: dict[tuple[str, int], Any] = {
    ("ReplyGenerated", 1): lambda raw: raw | {"schemaVersion": 2},  # the new fields' defaults: not recorded
    ("ReplyGenerated", 2): lambda raw: raw | {"schemaVersion": 3},  # covers inReplyTo alone (coversUpToSeq 0)
    ("ReplyGenerated", 3): lambda raw: raw | {"schemaVersion": 4},  # media position not recorded (mediaUpToSeq 0)
    ("ReplyGenerated", 4): lambda raw: raw | {"schemaVersion": 5},  # the photos given not recorded (imagesGiven null)
    ("MessageReceived", 1): lambda raw: raw | {"schemaVersion": 2},  # a v1 message is text: kind's default
    ("MessageReceived", 2): lambda raw: raw | {"schemaVersion": 3},  # v3 only added kinds
    ("HandoffRequested", 1): lambda raw: raw | {"schemaVersion": 2},  # v1's `by` values are all v2's
    ("FactsExtracted", 1): lambda raw: raw | {"schemaVersion": 2},  # usage unknown: none recorded
}


def schema_version(event_type: str) -> int:
    """The schemaVersion this build writes (and reads) for a type."""
    return EVENT_TYPES[event_type].model_fields["schemaVersion"].default


def parse_event(raw: dict[str, Any]) -> Event:
    """Validate a raw event dict, upcasting older versions; an unknown type, an unknown channel
    or a newer version raises UnknownSchemaVersion (UnknownEventType, UnknownChannel) with a
    clear message."""
    kind = raw.get("type")
    if isinstance(kind, str) and kind not in EVENT_TYPES:
        raise UnknownEventType(f"event {raw.get('eventId')!r} has type {kind!r}, which this build does not know: upgrade")
    channel = raw.get("channel")
    if isinstance(channel, str) and channel not in _KNOWN_CHANNELS:
        raise UnknownChannel(
            f"event {raw.get('eventId')!r} has channel {channel!r}, which this build does not know: upgrade")
    if kind in EVENT_TYPES:
        current = schema_version(kind)
        version = raw.get("schemaVersion", SCHEMA_VERSION)
        while isinstance(version, int) and version < current and (kind, version) in UPCASTERS:
            raw = UPCASTERS[(kind, version)](raw)
            version = raw.get("schemaVersion")
        if version != current:
            raise UnknownSchemaVersion(
                f"event {raw.get('eventId')!r} ({kind}) has schemaVersion {version!r}; this build reads {current}: upgrade"
            )
    return _ADAPTER.validate_python(raw)


def new_event(
    event_type: str,
    *,
    business_id: str,
    user_id: str,
    channel: str,
    payload: dict[str, Any],
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    location_id: str | None = None,
) -> Event:
    """Build an event not yet in the log (seq 0 until the store assigns it)."""
    return _ADAPTER.validate_python(
        {
            "type": event_type,
            "eventId": event_id or str(uuid.uuid4()),
            "streamId": stream_id(business_id, user_id),
            "seq": 0,
            "occurredAt": occurred_at or utc_now(),
            "businessId": business_id,
            "locationId": location_id,
            "userId": user_id,
            "channel": channel,
            "payload": payload,
        }
    )


def reply_event_id(inbound_event_id: str) -> str:
    """The one reply an inbound message may have (each inbound is covered by exactly one reply, or by a handoff)."""
    return derive_id("reply", inbound_event_id)
