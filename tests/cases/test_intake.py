"""Completeness of takedown requests under each regime."""

from __future__ import annotations

from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
    check_completeness,
)

URL = ContentLocator(urls=("https://example.test/p/1",))


def fields(s: TakedownSubmission) -> set[str]:
    return {m.field for m in check_completeness(s).missing}


def test_a_complete_take_it_down_request():
    s = TakedownSubmission(Regime.TAKE_IT_DOWN, URL, signature="Jane Doe",
                           declarations=frozenset({Declaration.NOT_CONSENSUAL}),
                           statement="I never agreed to this photo being shared",
                           email="jane@example.test")
    assert check_completeness(s).complete


def test_an_empty_take_it_down_request_lists_every_requirement():
    s = TakedownSubmission(Regime.TAKE_IT_DOWN, ContentLocator())
    assert fields(s) == {"content", "signature", "statement", "contact"}
    assert all(m.why for m in check_completeness(s).missing)


def test_uk_report_needs_its_four_declarations():
    s = TakedownSubmission(Regime.UK_INTIMATE_IMAGE, URL, email="a@b.test",
                           relationship=Relationship.SELF,
                           declarations=frozenset({Declaration.INTIMATE, Declaration.TRUTH}))
    assert fields(s) == {"declaration:person_or_representative", "declaration:good_faith"}


def test_dsa_notice_may_omit_name_and_email_only_for_csam():
    base = dict(statement="This is child sexual abuse material",
                declarations=frozenset({Declaration.GOOD_FAITH, Declaration.TRUTH}))
    assert fields(TakedownSubmission(Regime.DSA_ART16, URL, **base)) == {"name", "email"}
    assert check_completeness(TakedownSubmission(Regime.DSA_ART16, URL, csam=True,
                                                 **base)).complete


def test_dsa_notice_needs_an_exact_location_not_just_hashes():
    s = TakedownSubmission(Regime.DSA_ART16, ContentLocator(pdq_hashes=("a" * 64,)),
                           statement="illegal", requester_name="A", email="a@b.test",
                           declarations=frozenset({Declaration.GOOD_FAITH, Declaration.TRUTH}))
    assert fields(s) == {"location"}


def test_malformed_hashes_are_named():
    s = TakedownSubmission(Regime.TAKE_IT_DOWN, ContentLocator(pdq_hashes=("xyz",)),
                           signature="J", statement="s", email="j@e.test",
                           declarations=frozenset({Declaration.NOT_CONSENSUAL}))
    assert fields(s) == {"hashes"}
