"""What a protected likeness does to a ruling (``policy.likeness.protect``), on rulings the
decision core made from hand-built findings."""

from __future__ import annotations

from built_findings import findings, photo

from consentry.policy import evaluate, load_policy
from consentry.policy.likeness import ProtectedFace, protect
from consentry.signals.findings import Concept, MinorCue, PersonCue
from consentry.signals.semantic import SemanticFinding

POLICY = load_policy()
FACE = ProtectedFace(image=0, box=(10, 10, 50, 50), no_edits=False)


def codes(ruling) -> set[str]:
    return {r.code.value for r in ruling.reasons}


def test_a_mild_request_held_for_review_becomes_an_ii1_refusal():
    held = evaluate(findings(sexual=[Concept.SUGGESTIVE], persons=[PersonCue.PRONOUN]),
                    [photo(33)], POLICY)
    assert (held.decision, held.clause) == ("review", "RV-1")  # "make her look hot"
    ruling = protect(held, [FACE], edit=True)
    assert (ruling.decision, ruling.clause) == ("block", "II-1")
    assert {"protected_likeness", "sexualising_request"} <= codes(ruling)
    assert all("protected" in r.detail for r in ruling.reasons
               if r.code.value == "protected_likeness")


def test_a_hold_over_a_possible_minor_keeps_its_review_and_its_minor_evidence():
    meaning = SemanticFinding(Concept.REVEALING, "make her outfit skimpier", "test", 0.6,
                              0.3, strong=False)
    held = evaluate(findings(minors=[(MinorCue.AGE, 15)]), [photo(33)], POLICY,
                    semantic=[meaning])
    assert (held.decision, held.clause) == ("review", "RV-1")
    assert "minor_cue" in codes(held)
    # Turning it into an II-1 strike would drop the minor cue and the person who may find
    # CS-1; the hold already keeps the image from being made.
    assert protect(held, [FACE], edit=True) == held


def test_a_non_sexual_edit_is_left_alone_unless_the_person_asked_for_no_edits():
    coat = evaluate(findings(persons=[PersonCue.PRONOUN]), [photo(33)], POLICY)
    assert coat.clause == "OK-1"
    assert protect(coat, [FACE], edit=True) == coat
    no_edits = ProtectedFace(image=0, box=(10, 10, 50, 50), no_edits=True)
    ruling = protect(coat, [no_edits], edit=True)
    assert (ruling.decision, ruling.clause) == ("block", "LR-1")
    assert protect(coat, [no_edits], edit=False) == coat  # a text-only request edits nothing


def test_child_safety_rulings_are_never_softened():
    cs1 = evaluate(findings(sexual=[Concept.REVEALING]), [photo(14)], POLICY)
    assert cs1.clause == "CS-1"
    assert protect(cs1, [FACE], edit=True) == cs1
