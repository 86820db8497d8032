"""The likeness registry in the gate, as issue 14 says it is done: a person enrolled from
two photos is protected when a third, different picture of them comes with a mild
revealing request; someone not enrolled is judged by the ordinary rules; the person's own
account can edit; withdrawal ends protection at once and leaves no embedding behind."""

from __future__ import annotations

import json

import pytest
from likeness_photos import enrolment_photos, side_by_side, third_picture
from sqlalchemy import func, select

from consentry.errors import InvalidRequest
from consentry.gate import Gate
from consentry.likeness.registry import LikenessConflict, LikenessRegistry, NotEnrolled
from consentry.store.models import EvidenceItem, LikenessFace, ReviewItem

MILD = "make her outfit more revealing"


def codes(verdict) -> set[str]:
    return {r["code"] for r in verdict.reasons}


@pytest.fixture
def enrolled(gate: Gate, photos):
    return gate.likeness.enrol("alice", enrolment_photos(photos["astronaut"]), actor="platform")


def test_a_mild_request_on_a_new_picture_of_an_enrolled_person_is_refused(gate, photos,
                                                                          enrolled):
    third = third_picture(photos["astronaut"])
    verdict = gate.check_generation(MILD, [third], account="bob")
    assert (verdict.decision, verdict.policy.clause) == ("block", "II-1")
    assert "protected_likeness" in codes(verdict)
    # Privacy: nothing in the verdict says who is enrolled.
    text = json.dumps(verdict.model_dump(mode="json"))
    assert "alice" not in text and enrolled.id not in text

    # Someone not enrolled: the same request is judged by the ordinary rules.
    ordinary = gate.check_generation(MILD, [photos["hopper"]], account="bob")
    assert "protected_likeness" not in codes(ordinary)
    baseline = Gate(gate.db, settings=gate.settings, analyser=gate.image_analyser,
                    likeness=_empty_registry(gate))
    try:
        expected = baseline.check_generation(MILD, [photos["hopper"]], account="carol")
    finally:
        baseline.close()
    assert (ordinary.decision, ordinary.policy.clause) == (expected.decision,
                                                          expected.policy.clause)


def test_a_suggestive_request_that_ordinarily_goes_to_review_is_refused_outright(
        gate, photos, enrolled):
    prompt = "make her look hot"
    assert gate.check_generation(prompt, [photos["hopper"]], account="bob").decision == "review"
    verdict = gate.check_generation(prompt, [third_picture(photos["astronaut"])],
                                    account="bob")
    assert (verdict.decision, verdict.policy.clause) == ("block", "II-1")


def test_the_persons_own_account_may_edit_their_own_photo(gate, photos, enrolled):
    third = third_picture(photos["astronaut"])
    verdict = gate.check_generation("put her in a bikini", [third], account="alice")
    assert verdict.decision == "allow", verdict.reasons
    assert "consent_on_record" in codes(verdict)
    # The same request from anyone else is refused.
    assert gate.check_generation("put her in a bikini", [third],
                                 account="bob").policy.clause == "II-1"


def test_withdrawal_ends_protection_at_once_and_leaves_no_embedding(gate, photos, enrolled):
    registry = gate.likeness
    replica = LikenessRegistry(gate.db, gate.vault, gate.sandbox, embedder=registry.embedder)
    assert len(replica) == len(registry) == 2  # another replica built it from the store
    registry.withdraw("alice", actor="platform")

    third = third_picture(photos["astronaut"])
    verdict = gate.check_generation(MILD, [third], account="bob")
    assert "protected_likeness" not in codes(verdict)
    with gate.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(LikenessFace)) == 0
        assert s.scalar(select(func.count()).select_from(EvidenceItem).where(
            EvidenceItem.subject_kind == "likeness")) == 0
    vector = registry.embedder.embed_enrolment_photo(gate.sandbox.decode(third)).vector
    assert len(registry) == 0 and registry.nearest(vector) is None
    replica.sync()  # the other replica, on its next match
    assert len(replica) == 0 and replica.nearest(vector) is None


def test_no_edits_refuses_any_edit_by_others_under_lr1(gate, photos):
    gate.likeness.enrol("alice", enrolment_photos(photos["astronaut"]), no_edits=True,
                        actor="platform")
    third = third_picture(photos["astronaut"])
    coat = "put her in a winter coat"
    refused = gate.check_generation(coat, [third], account="bob")
    assert (refused.decision, refused.policy.clause) == ("block", "LR-1")
    assert refused.enforcement.strike_weight == 0
    assert gate.check_generation(coat, [third], account="alice").decision == "allow"
    assert gate.check_generation(coat, [photos["hopper"]], account="bob").decision == "allow"
    gate.likeness.change("alice", no_edits=False, actor="platform")
    assert gate.check_generation(coat, [third], account="bob").decision == "allow"


def test_repeated_attempts_against_one_person_open_a_review_item(gate, photos, enrolled):
    third = third_picture(photos["astronaut"])
    for n in range(3):
        gate.check_generation(f"put her in a bikini, take {n}", [third], account="bob")
    with gate.db.transaction() as s:
        item = s.scalars(select(ReviewItem).where(
            ReviewItem.kind == "likeness_attempts")).one()
        assert (item.subject, item.account_id) == (enrolled.id, "bob")


def test_enrolment_refuses_photos_without_exactly_one_clear_face(gate, photos):
    astronaut = enrolment_photos(photos["astronaut"])[0]
    cases = [([astronaut, photos["coffee"]], "no_clear_face", "photos[1]"),
             ([side_by_side(photos["astronaut"], photos["hopper"]), astronaut],
              "several_faces", "photos[0]"),
             ([astronaut, photos["hopper"]], "different_people", "photos[1]"),
             ([astronaut], "photo_count", "photos")]
    for sent, code, field in cases:
        with pytest.raises(InvalidRequest) as err:
            gate.likeness.enrol("alice", sent, actor="platform")
        assert (err.value.code, err.value.field) == (code, field), str(err.value)
    with pytest.raises(NotEnrolled):
        gate.likeness.get("alice")
    # Nothing was enrolled by the refusals.
    with gate.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(LikenessFace)) == 0


def test_the_same_face_under_another_account_is_held_for_review(gate, photos, enrolled):
    with pytest.raises(LikenessConflict) as err:
        gate.likeness.enrol("mallory", enrolment_photos(photos["astronaut"]), actor="platform")
    assert err.value.code == "likeness_held_for_review"
    assert gate.likeness.get("mallory").status == "held"
    with gate.db.transaction() as s:
        item = s.scalars(select(ReviewItem).where(
            ReviewItem.kind == "likeness_duplicate")).one()
        assert item.account_id == "mallory"
    # The held entry protects nothing and gives mallory no consent over alice's face.
    third = third_picture(photos["astronaut"])
    assert gate.check_generation(MILD, [third], account="mallory").policy.clause == "II-1"


def _empty_registry(gate: Gate) -> LikenessRegistry:
    class Nobody(LikenessRegistry):
        def match(self, image, index, boxes):
            return []

    return Nobody(gate.db, gate.vault, gate.sandbox)
