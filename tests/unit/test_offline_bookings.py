"""The offline responder about bookings: the customer's appointments stated plainly, and no stray
words of an earlier message named back."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from agentstream.projections.booking_prompt import APPOINTMENTS
from agentstream.projections.offline import offline_reply
from tests.unit.test_offline import SALON, context

TUESDAY = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


def with_appointments(ctx, *rows):
    return dataclasses.replace(ctx, extra={APPOINTMENTS: list(rows)})


def test_ce_programare_am_states_a_confirmed_appointment_and_a_proposal_plainly() -> None:
    ctx = with_appointments(context(SALON, ["Bună, ce programare am?"], TUESDAY),
                            {"at": "2026-11-26T10:00:00+02:00", "service": "tuns", "status": "confirmed"},
                            {"at": "2026-11-27T11:30:00+02:00", "service": "vopsit", "status": "proposed"})
    reply = offline_reply(ctx)
    assert "tuns, joi, 26 noiembrie, la 10:00 (confirmată)" in reply
    assert "vopsit, vineri, 27 noiembrie, la 11:30 (oră propusă, așteaptă răspuns)" in reply


def test_what_is_my_booking_without_one_says_there_is_none_and_a_request_is_not_a_booking() -> None:
    assert "You have no appointment with us." in offline_reply(context(SALON, ["Hi, what is my booking?"], TUESDAY))
    ctx = with_appointments(context(SALON, ["what is my booking?"], TUESDAY),
                            {"at": "2026-11-26T10:00:00+02:00", "service": None, "status": "requested"})
    assert "appointment, Thursday, 26 November at 10:00 (requested, not confirmed)" in offline_reply(ctx)


def test_the_follow_up_names_no_stray_word_of_the_earlier_message() -> None:
    reply = offline_reply(context(SALON, ["De fapt, mutați programarea pe vineri", "Mulțumesc"], TUESDAY))
    assert "fapt" not in reply and "mutati" not in reply.lower() and "mutați" not in reply
