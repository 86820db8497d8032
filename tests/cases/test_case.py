"""The pure rules of a case: status from events, the SLA clock, PINs and their lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consentry.cases.case import (
    CaseStatus,
    Due,
    Event,
    EventKind,
    derive_status,
    due_state,
    fold_case,
    hash_pin,
    new_case_number,
    new_pin,
    normalise_case_number,
    pin_matches,
)
from consentry.limits import lock_for

T0 = datetime(2026, 11, 25, 9, tzinfo=UTC)


def ev(kind: EventKind, minutes: int = 0, **details) -> Event:
    return Event(kind, T0 + timedelta(minutes=minutes), "system", True, details)


def test_status_is_that_of_the_latest_status_event():
    assert derive_status([]) is CaseStatus.RECEIVED
    history = [ev(EventKind.INCOMPLETE, missing=[]), ev(EventKind.NOTIFIED),
               ev(EventKind.AMENDED), ev(EventKind.RECEIVED), ev(EventKind.LOCATED, items=[])]
    assert derive_status(history) is CaseStatus.LOCATED
    assert derive_status([*history, ev(EventKind.CLOSED)]) is CaseStatus.REMOVED
    rejected = [*history, ev(EventKind.REJECTED), ev(EventKind.APPEALED)]
    assert derive_status(rejected) is CaseStatus.APPEALED


def test_fold_tracks_items_through_removal_failure_and_restoration():
    item = {"content_id": "p1", "account_id": "u1", "distance": 0, "identified": True}
    copy = {"content_id": "p2", "account_id": "u2", "distance": 6, "identified": False}
    events = [ev(EventKind.RECEIVED), ev(EventKind.LOCATED, items=[item, copy]),
              ev(EventKind.ITEM_REMOVED, 1, content_id="p1"),
              ev(EventKind.REMOVAL_FAILED, 2, content_id="p2", action="remove")]
    view = fold_case("TD-1", "take_it_down", T0, T0 + timedelta(hours=48), None, events)
    assert (view.removed, view.failed, view.status) == (("p1",), ("p2",), CaseStatus.LOCATED)
    events += [ev(EventKind.ITEM_REMOVED, 30, content_id="p2"), ev(EventKind.CLOSED, 30)]
    view = fold_case("TD-1", "take_it_down", T0, T0 + timedelta(hours=48), None, events)
    assert view.failed == () and view.time_to_removal == timedelta(minutes=30)
    assert view.public()["copies_found"] == 1 and "located" not in view.public()
    events += [ev(EventKind.REVERSED, 60), ev(EventKind.ITEM_RESTORED, 61, content_id="p1")]
    view = fold_case("TD-1", "take_it_down", T0, T0 + timedelta(hours=48), None, events)
    assert view.status is CaseStatus.REVERSED and view.removed == ("p2",)


def test_due_state_marks_the_last_six_hours_and_overdue():
    deadline = T0 + timedelta(hours=48)
    assert due_state(deadline, T0) is Due.OPEN
    assert due_state(deadline, deadline - timedelta(hours=5, minutes=59)) is Due.AT_RISK
    assert due_state(deadline, deadline) is Due.OVERDUE


def test_pins_are_stored_salted_and_checked():
    pin = new_pin()
    stored = hash_pin(pin)
    assert len(pin) == 8 and pin.isdigit() and pin not in stored
    assert pin_matches(pin, stored) and not pin_matches("12345678", stored)
    assert not pin_matches(pin, "garbage") and hash_pin(pin) != stored  # salted


def test_lock_doubles_with_each_lock_up_to_64_hours():
    assert lock_for(1) == timedelta(minutes=15)
    assert lock_for(2) == timedelta(minutes=30)
    assert lock_for(40) == timedelta(hours=64)


def test_case_numbers_are_random_and_forgiving_to_type():
    numbers = {new_case_number() for _ in range(200)}
    assert len(numbers) == 200 and all(n.startswith("TD-") and len(n) == 13 for n in numbers)
    assert normalise_case_number(" td-7k4q 9xwm2a ") == "TD-7K4Q9XWM2A"
    assert normalise_case_number("TD-7K4Q9XWMOL") == "TD-7K4Q9XWM01"
