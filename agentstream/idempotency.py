"""Every idempotency key (an event's `external_id` in the log), built in one place.

A key is unique per business: appending a second event under a key the business already used
returns the first event instead. The prefixes below are stored in the log; changing one breaks
the recognition of retries of events already written.
"""

from __future__ import annotations


def inbound(channel: str, external_id: str, user_id: str | None = None) -> str:
    """A customer's message: the channel's own message id, or (for ids a client chooses, `user_id`
    given) that id per customer."""
    return f"{channel}:{external_id}" if user_id is None else f"{channel}:{user_id}:{external_id}"


def reply(inbound_event_id: str) -> str:
    """An inbound's one reply."""
    return f"reply:{inbound_event_id}"


def handoff_notice(inbound_event_id: str) -> str:
    """The notice telling a customer who asked for a person that one will answer."""
    return f"handoff:{inbound_event_id}"


def handoff_timeout_notice(handoff_event_id: str) -> str:
    """The notice sent when nobody took a handoff in time."""
    return f"handoff-notice:{handoff_event_id}"


def facts(inbound_event_id: str) -> str:
    """The facts read from an inbound message."""
    return f"facts:{inbound_event_id}"


def delivered(reply_event_id: str) -> str:
    """A reply's delivery outcome (ReplyDelivered or DeliveryFailed)."""
    return f"delivered:{reply_event_id}"


def sending(reply_event_id: str) -> str:
    """The delivery claim of a reply being sent."""
    return f"sending:{reply_event_id}"


def sent(vendor_message_id: str) -> str:
    """The vendor's id of a reply it accepted (an alias of the delivery outcome)."""
    return f"sent:{vendor_message_id}"


def status(vendor_message_id: str, status_name: str) -> str:
    """A vendor's status report of one of our messages."""
    return f"status:{vendor_message_id}:{status_name}"


def skipped(event_id: str, revoked_at: int | None = None) -> str:
    """A skip: one per event, and one more after each revocation."""
    return f"skipped:{event_id}" if revoked_at is None else f"skipped:{event_id}:after:{revoked_at}"


def unskipped(event_id: str, skip_seq: int) -> str:
    """The revocation of a skip."""
    return f"unskipped:{event_id}:{skip_seq}"


def owner_message(key: str) -> str:
    """An owner's message, by the Idempotency-Key the caller chose."""
    return f"owner-message:{key}"


def owner_facts(key: str) -> str:
    """An owner's fact correction or retraction, by the Idempotency-Key the caller chose."""
    return f"owner-facts:{key}"


def resolved(session_id: str) -> str:
    """A session resolved (once per session)."""
    return f"resolve:{session_id}"


def expired(session_id: str, due_at: str) -> str:
    """A session ended for idleness at its due time."""
    return f"expire:{session_id}:{due_at}"


def nudge(session_id: str) -> str:
    """The one nudge of a session."""
    return f"nudge:{session_id}"


def legacy(message_id: str) -> str:
    """A message brought over by the legacy import."""
    return f"legacy:{message_id}"


def selfcheck(user_id: str, n: int) -> str:
    """The self-check's n-th test message."""
    return f"selfcheck:{user_id}-{n}"


def media(source_event_id: str, index: int) -> str:
    """The outcome (stored, refused or failed to download) of an inbound's file."""
    return f"media:{source_event_id}:{index}"


def transcript(source_event_id: str, index: int) -> str:
    """A voice note's transcript, or its failure."""
    return f"transcript:{source_event_id}:{index}"


def opt_change(inbound_event_id: str) -> str:
    """The one opt-out (or opt-in) a customer's message sets off."""
    return f"opt:{inbound_event_id}"


def opt_signal(channel: str, vendor_signal_id: str) -> str:
    """The one opt-out (or opt-in) a vendor's signal sent without a message sets off."""
    return f"opt-signal:{channel}:{vendor_signal_id}"


def reminder(reminder_key: str) -> str:
    """A confirmed appointment's one reminder for so many minutes before its start: its
    ReminderSent or, once the start has passed, its ReminderMissed (one of the two, once)."""
    return f"reminder:{reminder_key}"
