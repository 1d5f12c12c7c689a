"""The appointments fold: states from request to done, whatever order the log holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentstream.events import Event, new_event
from agentstream.projections.appointments import (
    APPOINTMENTS, ENDED, OPEN, STATUSES, customer_appointments, empty_appointments, status_at,
)
from agentstream.projections.base import FoldConfig, fold_events

B, U = "salon", "ana"
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
IDS = ("a1", "a2", "a3")
TIMES = ("2030-01-10T10:00:00+02:00", "2030-01-10T11:30:00+02:00", "2030-01-11T09:00:00+02:00")


def event(kind: str, seq: int, appointment_id: str, **payload: Any) -> Event:
    body: dict[str, Any] = {"appointmentId": appointment_id, **payload}
    if kind != "NoShow" and "by" not in body and kind != "Requested":
        body["by"] = "owner"
    if kind in ("Requested", "Proposed", "Confirmed"):
        body.setdefault("at", TIMES[0])
    if kind == "Confirmed":
        body.setdefault("minutes", 30)
    return new_event(f"Appointment{kind}", business_id=B, user_id=U, channel="system", payload=body,
                     occurred_at=T0 + timedelta(minutes=seq)).with_seq(seq)


def fold(events: list[Event]) -> dict[str, Any]:
    state, _ = fold_events(APPOINTMENTS, events, FoldConfig(), B, U)
    return state


def step(state: dict[str, Any], e: Event) -> tuple[dict[str, Any], list[Any]]:
    return APPOINTMENTS.apply(state, e, FoldConfig())


def test_request_proposal_answer_and_cancel_make_its_life():
    log = [event("Requested", 1, "a1", service="tuns"),
           event("Proposed", 2, "a1", at=TIMES[1]),
           event("Confirmed", 3, "a1", at=TIMES[1], by="customer", minutes=45),
           event("Cancelled", 4, "a1", by="customer", reason="sick")]
    states = [fold(log[:n])["appointments"]["a1"] for n in range(1, 5)]
    assert [s["status"] for s in states] == ["requested", "proposed", "confirmed", "cancelled"]
    confirmed = states[2]
    assert (confirmed["at"], confirmed["startsAt"], confirmed["minutes"], confirmed["service"]) == \
        (TIMES[1], "2030-01-10T09:30:00.000Z", 45, "tuns")
    assert states[3]["reason"] == "sick" and states[3]["by"] == "customer"


def test_a_confirmed_appointment_reads_done_once_its_end_has_passed_and_a_no_show_never_does():
    state = fold([event("Requested", 1, "a1"), event("Confirmed", 2, "a1", minutes=30)])
    booked = state["appointments"]["a1"]
    start = datetime(2030, 1, 10, 8, 0, tzinfo=timezone.utc)
    assert status_at(booked, start + timedelta(minutes=29)) == "confirmed"
    assert status_at(booked, start + timedelta(minutes=30)) == "done"
    missed = fold([event("Requested", 1, "a1"), event("Confirmed", 2, "a1"), event("NoShow", 3, "a1")])
    assert status_at(missed["appointments"]["a1"], start + timedelta(days=1)) == "no-show"


def test_a_day_only_request_has_no_start_and_lists_under_its_day():
    state = fold([event("Requested", 1, "a1", at="2030-01-10")])
    row = customer_appointments(state, T0)[0]
    assert (row["status"], row["startsAt"], row["day"]) == ("requested", None, "2030-01-10")


def test_each_change_puts_the_appointments_booking_row_and_other_events_put_none():
    state = empty_appointments(B, U)
    state, puts = step(state, event("Requested", 1, "a1"))
    assert [(p.table, p.item["appointmentId"], p.item["status"]) for p in puts] == [("bookings", "a1", "requested")]
    other = new_event("SessionClosed", business_id=B, user_id=U, channel="system", payload={"sessionId": "s"}).with_seq(2)
    state, puts = step(state, other)
    assert puts == [] and state["lastSeq"] == 2


def test_a_second_confirmation_or_a_confirmation_after_a_decline_changes_nothing():
    log = [event("Requested", 1, "a1"), event("Declined", 2, "a1"), event("Confirmed", 3, "a1")]
    assert fold(log)["appointments"]["a1"]["status"] == "declined"
    log = [event("Requested", 1, "a1"), event("Confirmed", 2, "a1", at=TIMES[0]), event("Confirmed", 3, "a1", at=TIMES[2])]
    assert fold(log)["appointments"]["a1"]["at"] == TIMES[0]


KINDS = ("Requested", "Proposed", "Confirmed", "Declined", "Cancelled", "NoShow")
steps = st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(IDS), st.sampled_from(TIMES)), max_size=25)


def log_of(drawn: list[tuple[str, str, str]]) -> list[Event]:
    out = []
    for seq, (kind, aid, at) in enumerate(drawn, start=1):
        extra = {"at": at} if kind in ("Requested", "Proposed", "Confirmed") else {}
        out.append(event(kind, seq, aid, **extra))
    return out


@settings(max_examples=200, deadline=None)
@given(steps)
def test_an_ended_appointment_never_comes_back_and_only_a_request_creates_one(drawn):
    log = log_of(drawn)
    state = empty_appointments(B, U)
    seen_ended: dict[str, str] = {}
    requested = set()
    for e in log:
        state, _ = step(state, e)
        if e.type == "AppointmentRequested":
            requested.add(e.payload.appointmentId)
        assert set(state["appointments"]) <= requested
        for aid, appointment in state["appointments"].items():
            assert appointment["status"] in STATUSES
            if aid in seen_ended:
                assert appointment["status"] == seen_ended[aid]
            elif appointment["status"] in ENDED:
                seen_ended[aid] = appointment["status"]


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(min_value=0, max_value=25))
def test_folding_again_or_with_duplicates_gives_the_same_state(drawn, repeat):
    log = log_of(drawn)
    once = fold(log)
    state = empty_appointments(B, U)
    for e in log + log[:repeat]:  # a redelivered prefix is a duplicate
        state, _ = step(state, e)
    assert state == once
    assert fold(list(reversed(log))) == once  # fold_events orders by seq


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_confirmed_appointment_holds_the_time_its_confirmation_gave(drawn):
    state, booked = empty_appointments(B, U), {}
    for e in log_of(drawn):
        before = (state["appointments"].get(e.payload.appointmentId) or {}).get("status")
        state, _ = step(state, e)
        if e.type == "AppointmentConfirmed" and before in OPEN:
            booked[e.payload.appointmentId] = e.payload.at  # the confirmation that took effect
    for aid, appointment in state["appointments"].items():
        if appointment["status"] in ("confirmed", "no-show"):
            assert appointment["at"] == booked[aid]  # later confirmations and no-shows leave its time
