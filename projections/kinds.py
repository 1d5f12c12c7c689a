"""Which inbound messages the AI answers, and how the others read (pure: a function of the event).

A customer's text, a tapped button (its title is the text), a photo, a voice note and a document
are answered; so is a video, a sticker or an e-mail attachment sent alone (the customer is asked
to write instead). A reaction, a
location or contact sent without text (a parser records one with text as kind text), and what a
channel marks unsupported (a sticker, a system notice such as a number change) are recorded and
not answered; so is a message imported from history. Events that are not customer messages
(statuses, replies) never call for a reply. The worker, explain and shadow all ask this module.
"""

from __future__ import annotations

from agentstream.events import IMPORTED, Event, MessageReceived

ANSWERED_KINDS = frozenset({"text", "button", "image", "audio", "document"})
UNREAD_FILES = frozenset({"video", "sticker", "video_note", "animation", "attachment", "unknown"})  # asked to write instead
REACTION = "reaction"
NO_REPLY_REASONS = {
    "reaction": "a reaction",
    "location": "a location sent without text",
    "contact": "a contact sent without text",
    "unsupported": "a kind of message the channel does not support",
}


def kind_needs_reply(kind: str) -> bool:
    """Whether a customer message of this kind is answered (a stored message item's
    `metadata.kind`; items without one are text)."""
    return kind in ANSWERED_KINDS


def needs_reply(event: Event) -> bool:
    """Whether `event` is a customer message the AI answers (a handoff may still hold the
    answer back: that is the conversation fold's state, not the event's)."""
    return (isinstance(event, MessageReceived) and (kind_needs_reply(event.payload.kind) or sent_unread_file(event))
            and IMPORTED not in event.payload.replyTo)


def sent_unread_file(event: MessageReceived) -> bool:
    """A message of nothing but a file agentstream does not read (a video, a sticker, an e-mail
    attachment): answered, to ask the customer to write instead."""
    return event.payload.kind == "unsupported" and any(
        getattr(a, "kind", None) in UNREAD_FILES for a in event.payload.attachments)


def no_reply_reason(event: Event) -> str | None:
    """Why `event` gets no reply by its nature ("a reaction", …), or None if it needs one."""
    if needs_reply(event):
        return None
    if not isinstance(event, MessageReceived):
        return f"a {event.type}, not a customer message"
    if IMPORTED in event.payload.replyTo:
        return "a message imported from history"
    return NO_REPLY_REASONS.get(event.payload.kind, f"a message of kind {event.payload.kind}")


def is_reaction(event: Event) -> bool:
    return isinstance(event, MessageReceived) and event.payload.kind == REACTION
