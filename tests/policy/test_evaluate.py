"""The decision core, on hand-built findings: which clause decides, and why."""

from __future__ import annotations

import pytest
from built_findings import findings, photo

from consentry.policy import MinorEvidence, evaluate, load_policy
from consentry.signals.findings import BenignCue, Concept, MinorCue, PersonCue

POLICY = load_policy()


def test_bikini_edit_of_a_real_womans_photo_is_ii_1():
    ruling = evaluate(findings(sexual=[Concept.REVEALING], persons=[PersonCue.PRONOUN]),
                      [photo(33)], POLICY)
    assert (ruling.decision, ruling.clause) == ("block", "II-1")
    codes = {r.code for r in ruling.reasons}
    assert {"real_person_in_photo", "sexualising_request"} <= codes


def test_winter_coat_on_the_same_photo_is_allowed():
    ruling = evaluate(findings(persons=[PersonCue.PRONOUN]), [photo(33)], POLICY)
    assert (ruling.decision, ruling.clause) == ("allow", "OK-1")


def test_stated_minor_with_any_sexualisation_is_cs_1_even_without_photo():
    ruling = evaluate(findings(sexual=[Concept.REVEALING], minors=[(MinorCue.AGE, 12)]),
                      [], POLICY)
    assert (ruling.decision, ruling.clause) == ("block", "CS-1")
    assert ruling.minor_evidence is MinorEvidence.STATED


def test_a_stated_adult_age_is_not_a_minor_cue():
    ruling = evaluate(findings(sexual=[Concept.REVEALING], minors=[(MinorCue.AGE, 30)]),
                      [], POLICY)
    assert ruling.clause == "OK-1"


def test_face_under_18_with_sexualisation_is_cs_1_estimated():
    ruling = evaluate(findings(sexual=[Concept.REVEALING]), [photo(14)], POLICY)
    assert ruling.clause == "CS-1"
    assert ruling.minor_evidence is MinorEvidence.ESTIMATED


def test_face_under_challenge_age_pushes_towards_refusal():
    ruling = evaluate(findings(sexual=[Concept.REVEALING]), [photo(22)], POLICY)
    assert ruling.clause == "CS-1"
    assert ruling.minor_evidence is MinorEvidence.CHALLENGE_AGE


def test_a_young_face_never_blocks_an_ordinary_edit():
    assert evaluate(findings(), [photo(9)], POLICY).decision == "allow"


def test_named_person_without_photo_is_ii_2():
    ruling = evaluate(findings(sexual=[Concept.NUDITY], persons=[PersonCue.NAME]), [], POLICY)
    assert (ruling.decision, ruling.clause) == ("block", "II-2")


def test_a_pronoun_without_a_photo_points_at_no_one():
    ruling = evaluate(findings(sexual=[Concept.REVEALING], persons=[PersonCue.PRONOUN]), [],
                      POLICY)
    assert ruling.decision == "allow"


@pytest.mark.parametrize("concept", [Concept.NUDITY, Concept.SEXUAL_ACT, Concept.NSFW,
                                     Concept.UNDRESS, Concept.SEXUAL_POSE])
def test_explicit_content_of_no_real_person_is_sx_1_by_default(concept):
    ruling = evaluate(findings(sexual=[concept]), [], POLICY)
    assert (ruling.decision, ruling.clause) == ("block", "SX-1")


def test_sx_1_is_a_setting_for_platforms_with_verified_adults():
    ruling = evaluate(findings(sexual=[Concept.NUDITY]), [], POLICY, allow_adult_content=True)
    assert (ruling.decision, ruling.clause, ruling.label) == ("allow", "SX-1", "adult_content")


def test_the_setting_never_reaches_real_people_or_minors():
    real = evaluate(findings(sexual=[Concept.NUDITY], persons=[PersonCue.NAME]), [], POLICY,
                    allow_adult_content=True)
    minor = evaluate(findings(sexual=[Concept.NUDITY], minors=[(MinorCue.WORD, None)]), [],
                     POLICY, allow_adult_content=True)
    assert (real.clause, minor.clause) == ("II-2", "CS-1")


def test_revealing_clothing_on_no_one_is_fine():
    assert evaluate(findings(sexual=[Concept.REVEALING]), [], POLICY).decision == "allow"


def test_mannequin_neutralises_a_swimsuit_but_not_nudity():
    swimsuit = evaluate(findings(sexual=[Concept.REVEALING], benign=[BenignCue.OBJECT_TARGET]),
                        [photo()], POLICY)
    nude = evaluate(findings(sexual=[Concept.NUDITY], benign=[BenignCue.OBJECT_TARGET],
                             persons=[PersonCue.PRONOUN]), [photo(30)], POLICY)
    assert swimsuit.decision == "allow"
    assert nude.clause == "II-1"


def test_revealing_edit_of_a_photo_with_no_visible_face_goes_to_review():
    ruling = evaluate(findings(sexual=[Concept.REVEALING]), [photo()], POLICY)
    assert (ruling.decision, ruling.clause) == ("review", "RV-1")


def test_merely_suggestive_edit_of_a_real_person_goes_to_review():
    ruling = evaluate(findings(sexual=[Concept.SUGGESTIVE]), [photo(40)], POLICY)
    assert (ruling.decision, ruling.clause) == ("review", "RV-1")


def test_editing_an_already_intimate_photo_of_a_real_person_goes_to_review():
    ruling = evaluate(findings(), [photo(35, nsfw=0.97)], POLICY)
    assert (ruling.decision, ruling.clause) == ("review", "RV-1")
    assert any(r.code == "intimate_input_image" for r in ruling.reasons)


def test_intimate_input_with_a_young_face_is_cs_1():
    ruling = evaluate(findings(), [photo(15, nsfw=0.95)], POLICY)
    assert ruling.clause == "CS-1"


def test_every_refusal_carries_the_evidence_spans():
    ruling = evaluate(findings(sexual=[Concept.UNDRESS], persons=[PersonCue.PRONOUN]),
                      [photo(30)], POLICY)
    spans = [r.span for r in ruling.reasons if r.span is not None]
    assert any(s.text == "undress" for s in spans)
    assert all(r.to_dict()["code"] for r in ruling.reasons)
