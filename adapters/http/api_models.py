"""The HTTP API's bodies as pydantic models: the handlers validate request bodies with them and
`/openapi.json` is generated from the same classes (adapters/http/openapi.py). Answers are
described by models too, loose where a projection's row is passed through as it is stored."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from agentstream.adapters.http.errors import HttpError

MAX_TEXT = 16_000
B = TypeVar("B", bound="Body")


class Body(BaseModel):
    """A request body. `refusal` is the 400's message for a body of the wrong shape."""

    model_config = ConfigDict(strict=True, extra="forbid")
    refusal: ClassVar[str] = "body does not match its schema"

    @classmethod
    def refused(cls, errors: list[Any]) -> str:
        return cls.refusal


def parse_body(model: type[B], text: str) -> B:
    """`text` validated as `model`, or HttpError(400) saying what is wrong (never echoing the input)."""
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            nested = "recursion limit" in str((first.get("ctx") or {}).get("error", ""))
            raise HttpError(400, "body nested too deeply" if nested else "body is not JSON") from None
        raise HttpError(400, model.refused(errors)) from None


# -- requests ------------------------------------------------------------------------------------

NonEmpty = Field(min_length=1)


class InboundMessage(Body):
    """A customer's message sent through the REST channel; `externalId` is the caller's own id of
    it (a repeat with the same id is a duplicate, answered 200 with the first message's eventId)."""

    model_config = ConfigDict(strict=True, extra="ignore",
                              json_schema_extra={"examples": [{"businessId": "demo-salon", "userId": "u-42",
                                                               "text": "Bună, aveți loc mâine la 10?",
                                                               "externalId": "crm-7731"}]})
    refusal: ClassVar[str] = "body needs non-empty strings businessId, userId, text, externalId"

    businessId: str = NonEmpty
    userId: str = NonEmpty
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    externalId: str = NonEmpty

    @classmethod
    def refused(cls, errors: list[Any]) -> str:
        if errors and all(e.get("type") == "string_too_long" and tuple(e.get("loc", ())) == ("text",) for e in errors):
            return f"text over {MAX_TEXT} characters"
        return cls.refusal


class FactValue(Body):
    """The owner's value of one fact (its form per kind: see the facts guide)."""

    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"value": "+40722000111"}]})
    refusal: ClassVar[str] = 'body must be {"value": …}'

    value: JsonValue


class _Strings(Body):
    @classmethod
    def refused(cls, errors: list[Any]) -> str:
        fields = [f'"{n}"' + ("" if f.is_required() else " (optional)") for n, f in cls.model_fields.items()]
        return f"body must be a JSON object of strings: {', '.join(fields)}"


class HandoffRequest(_Strings):
    """Hand the conversation to a person; an empty body is `{}`."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"reason": "asks for a refund"}]})

    reason: str = ""


class Release(_Strings):
    """Give the conversation back to the AI; an empty body is `{}`."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"reason": "answered"}]})

    reason: str = ""


class OwnerMessage(_Strings):
    """The owner's message to the customer, sent through the customer's channel."""

    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"text": "Vă așteptăm mâine la 10.", "author": "Ana"}]})

    text: str
    author: str


class AppointmentAction(_Strings):
    """An owner's move on an appointment: `propose` takes `at` (a local ISO time), `decline` and
    `cancel` an optional `reason`; confirm and no-show take `{}` or no body."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"at": "2030-01-10T11:30"}]})

    at: str = ""
    reason: str = ""


class Appointments(BaseModel):
    """The appointments starting in the range asked for, in the business's local time."""

    businessId: str
    appointments: list[dict[str, Any]]


class SignInForm(BaseModel):
    """The inbox's sign-in form (urlencoded)."""

    apiKey: str
    name: str = Field(description="the display name shown on the owner's messages")
    csrf: str


class InboxActionForm(BaseModel):
    """An inbox form (urlencoded): its CSRF token, and the text of a reply."""

    csrf: str
    text: str | None = None


class BookingActionForm(BaseModel):
    """A Bookings view form (urlencoded): its CSRF token and, to propose, the new local time."""

    csrf: str
    at: str | None = None


# -- answers -------------------------------------------------------------------------------------

class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every refusal: a status and one line saying what is wrong."""

    error: str


class Appended(_Answer):
    """An event appended to the log (or found there: `duplicate`)."""

    eventId: str
    seq: int
    duplicate: bool


class AppointmentChanged(Appended):
    """An owner's action on an appointment, appended (or found there: `duplicate`)."""

    appointmentId: str
    status: str = Field(description="the appointment's status after the action")
    notSent: str | None = Field(None, description="present when the action holds but its message to the customer "
                                "cannot go: past the channel's messaging window with no approved template for its "
                                "purpose (what to add, in one line)")


class Visitor(BaseModel):
    """A widget visitor and its token."""

    userId: str
    token: str
    expiresAt: int = Field(description="epoch seconds")


class Session(_Answer):
    """A customer's active session (the sessions projection's row) with its last messages."""

    sessionId: str
    businessId: str
    userId: str
    status: str
    lastMessages: list[dict[str, Any]] = []


class SessionMessages(BaseModel):
    sessionId: str
    messages: list[dict[str, Any]]


class Facts(_Answer):
    """A customer's current facts (the facts projection), by kind."""


class HandoffAnswer(_Answer):
    """The conversation's new status; `eventId` and `seq` when an event was appended."""

    sessionId: str
    status: Literal["ai", "waiting", "human", "resolved"]


class Conversations(BaseModel):
    businessId: str
    conversations: list[dict[str, Any]]


class Explanation(_Answer):
    """Why this reply: the context and prompt rebuilt from the log, and whether they reproduce it."""

    reproduced: bool
    promptHash: str | None = None
    differences: list[Any] = []


class Analytics(_Answer):
    """The analytics consumer's figures for one business."""


class WebhookReceipt(_Answer):
    """What a webhook call carried (a vendor may get its own answer instead, e.g. Twilio's TwiML)."""

    received: int
    statuses: int


class Health(BaseModel):
    status: Literal["ok"]
