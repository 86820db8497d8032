"""Which decisions go to a person, in which queue, how soon."""

from __future__ import annotations

from datetime import timedelta

from consentry.policy import Ruling
from consentry.policy.routing import ItemKind, Queue, route_appeal, route_check


def test_held_requests_and_image_only_refusals_go_to_people():
    held = route_check(Ruling("review", "RV-1", ()), pending_review=False, image_only=False,
                       has_media=True)
    assert (held.queue, held.kind, held.sla) == (Queue.GATE_REVIEW, ItemKind.REVIEW_VERDICT,
                                                 timedelta(hours=24))
    refused = route_check(Ruling("block", "II-1", ()), pending_review=False, image_only=True,
                          has_media=True)
    assert refused.queue is Queue.IMAGE_REFUSALS and not refused.restricted


def test_a_cs1_suspension_waits_for_a_child_safety_reviewer_within_24_hours():
    r = route_check(Ruling("block", "CS-1", ()), pending_review=True, image_only=False,
                    has_media=False)
    assert (r.queue, r.kind, r.restricted, r.sla) == (
        Queue.CHILD_SAFETY, ItemKind.CS1_CONFIRMATION, True, timedelta(hours=24))


def test_decisions_automation_can_stand_behind_need_no_person():
    for ruling, image_only in ((Ruling("allow", "OK-1", ()), True),
                               (Ruling("block", "II-3", ()), False),  # a known-hash match
                               (Ruling("block", "FC-1", ()), True),
                               (Ruling("block", "II-1", ()), False)):  # the words decided
        assert route_check(ruling, pending_review=False, image_only=image_only,
                           has_media=True) is None


def test_appeals_go_to_the_queue_their_subject_needs():
    assert route_appeal("II-1", known_match=False, has_media=True).queue is Queue.APPEALS
    assert route_appeal("II-3", known_match=True, has_media=True).queue is Queue.HASH_DISPUTES
    km = route_appeal("KM-1", known_match=True, has_media=False)
    assert (km.queue, km.kind, km.restricted) == (Queue.CHILD_SAFETY, ItemKind.HASH_DISPUTE,
                                                  True)
