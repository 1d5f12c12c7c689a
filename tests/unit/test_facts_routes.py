"""The owner's facts routes without services: which values a PUT accepts (in the fold's form) and
how GET shows an appointment whose time has passed since the last fold."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from agentstream.adapters.http.owner_service import facts_view, owner_value
from agentstream.adapters.http.common import HttpError

TZ = "Europe/Bucharest"


@pytest.mark.parametrize("kind, value, stored", [
    ("phone", "0722 123 456", "+40722123456"),
    ("phone", "+44 20 7946 0958", "+442079460958"),
    ("email", " Ana@Example.RO ", "ana@example.ro"),
    ("name", " Ana Pop ", "Ana Pop"),
    ("language", "RO", "ro"),
    ("address", "Str. Lungă 5, Brașov", "Str. Lungă 5, Brașov"),
    ("order", "ab-12", {"ref": "AB-12"}),
    ("order", {"ref": "x1"}, {"ref": "X1"}),
    ("appointment", {"at": "2030-01-10T10:00", "service": "tuns"}, {"at": "2030-01-10T10:00:00+02:00", "service": "tuns"}),
    ("appointment", {"at": "2030-01-10T08:00:00Z"}, {"at": "2030-01-10T10:00:00+02:00", "service": None}),
    ("appointment", {"at": "2030-01-10"}, {"at": "2030-01-10", "service": None}),  # a day-only booking, as the fold keeps them
])
def test_a_good_value_is_stored_in_the_folds_form(kind: str, value: Any, stored: Any) -> None:
    assert owner_value(kind, value, TZ) == stored


@pytest.mark.parametrize("kind, value", [
    ("phone", "abc"), ("phone", "0722"), ("phone", 722123456), ("email", "ana@"), ("email", "ana@example"),
    ("email", "ana example.ro"), ("name", ""), ("name", None), ("name", {"first": "Ana"}), ("name", "A" * 81),
    ("language", "română!"), ("appointment", {"service": "tuns"}), ("appointment", {"at": "mâine"}),
    ("appointment", "2030-01-10T10:00"), ("order", {}), ("order", "  "),
])
def test_a_value_the_fold_could_not_hold_is_refused(kind: str, value: Any) -> None:
    with pytest.raises(HttpError) as refused:
        owner_value(kind, value, TZ)
    assert refused.value.status == 400


def _fact(kind: str, value: Any, valid_from: str, valid_to: str | None, source: str = "owner") -> dict[str, Any]:
    return {"kind": kind, "value": value, "validFrom": valid_from, "validTo": valid_to, "sourceEventId": "e", "source": source}


def test_the_view_moves_an_appointment_whose_time_has_passed_to_superseded() -> None:
    past = _fact("appointment", {"at": "2026-11-30T10:00:00+02:00", "service": None}, "2026-11-20T08:00:00.000Z", "2026-11-30T08:00:00.000Z")
    future = _fact("appointment", {"at": "2026-12-20T10:00:00+02:00", "service": None}, "2026-11-21T08:00:00.000Z", "2026-12-20T08:00:00.000Z")
    old_phone = _fact("phone", "+40722123456", "2026-11-01T08:00:00.000Z", "2026-11-20T08:00:00.000Z", "stated")
    phone = _fact("phone", "+40733111222", "2026-11-20T08:00:00.000Z", None)
    state = {"businessId": "b", "userId": "u", "lastSeq": 7, "version": 1, "facts": {
        "appointment": {"current": [past, future], "superseded": []},
        "phone": {"current": [phone], "superseded": [old_phone]},
        "email": {"current": [], "superseded": []},  # retracted before anything was known
    }}
    view = facts_view(state, datetime(2026, 12, 1, 12, tzinfo=timezone.utc))
    assert view == {"businessId": "b", "userId": "u", "facts": [future, phone],
                    "superseded": {"appointment": [past], "phone": [old_phone]}, "asOfSeq": 7}
