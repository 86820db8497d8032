"""The takedown channel's messages say what the law requires, in plain words, and
nothing they must not."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from consentry.cases.intake import (
    ContentLocator,
    Regime,
    TakedownSubmission,
    check_completeness,
)
from consentry.cases.notices import (
    REGIME_NAMES,
    Notice,
    content_removed,
    format_deadline,
    nothing_found,
    removal_reversed,
    request_incomplete,
    request_received,
    request_rejected,
    restored,
    statement_of_reasons,
)

CASE = "TD-2026-000123"
JANE = "jane@example.test"
STATUS = "https://safety.example.test/status"
APPEAL = "https://safety.example.test/appeal"
RECEIVED = datetime(2026, 11, 25, 14, 5, 31, tzinfo=UTC)
CLAUSE = "II-3: known intimate image shared without consent"
HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")


def every_notice() -> list[Notice]:
    missing = check_completeness(TakedownSubmission(Regime.TAKE_IT_DOWN,
                                                    ContentLocator())).missing
    return [
        request_received(CASE, Regime.TAKE_IT_DOWN, JANE, RECEIVED + timedelta(hours=48),
                         STATUS),
        request_incomplete(CASE, Regime.TAKE_IT_DOWN, JANE, missing, STATUS),
        content_removed(CASE, Regime.UK_INTIMATE_IMAGE, JANE, removed=3, copies=2),
        nothing_found(CASE, Regime.DSA_ART16, JANE, banked=True),
        request_rejected(CASE, Regime.DSA_ART16, JANE, ["the link points to a news article"]),
        removal_reversed(CASE, Regime.TAKE_IT_DOWN, JANE, "the image is not intimate"),
        statement_of_reasons(CASE, Regime.TAKE_IT_DOWN, "acct-42", ["post-1", "post-2"],
                             CLAUSE, automated=True, appeal_url=APPEAL),
        restored(CASE, "acct-42", ["post-1"], "the request was withdrawn"),
    ]


def test_every_regime_has_a_human_name():
    assert set(REGIME_NAMES) == set(Regime)
    assert REGIME_NAMES[Regime.TAKE_IT_DOWN] == "US TAKE IT DOWN Act (47 U.S.C. 223a)"


def test_every_notice_carries_its_case_number_and_a_distinct_kind():
    sent = every_notice()
    assert all(n.case_number == CASE and CASE in n.subject and CASE in n.body for n in sent)
    assert len({n.kind for n in sent}) == len(sent)


def test_subjects_are_discreet_on_a_lock_screen():
    for n in every_notice():
        assert not re.search(r"intimate|nude|sexual|abuse", n.subject, re.I), n.subject


def test_no_hashes_or_pins_ever_appear():
    for n in every_notice():
        assert not HEX_RUN.search(n.body), n.kind
    # The PIN is shown once on screen; no message can even be given one.
    for fn in (request_received, request_incomplete):
        assert not any("pin" in p.lower() for p in inspect.signature(fn).parameters)


def test_deadline_is_shown_in_utc_as_people_read_it():
    assert format_deadline(datetime(2026, 11, 27, 14, 5, 59, tzinfo=UTC)) == \
        "27 November 2026, 14:05 UTC"
    new_york = timezone(timedelta(hours=-5))
    assert format_deadline(datetime(2026, 11, 27, 9, 5, tzinfo=new_york)) == \
        "27 November 2026, 14:05 UTC"
    with pytest.raises(ValueError, match="naive"):
        format_deadline(datetime(2026, 11, 27, 14, 5))


def test_request_received_gives_case_number_deadline_and_status_route():
    n = request_received(CASE, Regime.TAKE_IT_DOWN, JANE, RECEIVED + timedelta(hours=48),
                         STATUS)
    assert n.recipient == JANE and n.kind == "request_received"
    assert "27 November 2026, 14:05 UTC" in n.body
    assert STATUS in n.body
    assert "never send the PIN by email" in n.body
    assert REGIME_NAMES[Regime.TAKE_IT_DOWN] in n.body


def test_incomplete_request_lists_every_missing_why_and_says_it_is_kept():
    missing = check_completeness(TakedownSubmission(Regime.UK_INTIMATE_IMAGE,
                                                    ContentLocator())).missing
    assert len(missing) >= 5
    n = request_incomplete(CASE, Regime.UK_INTIMATE_IMAGE, JANE, missing, STATUS)
    for m in missing:
        assert f"- {m.why}" in n.body
    assert "kept your request" in n.body and STATUS in n.body
    assert "declaration:" not in n.body  # field names are jargon; the why-text is not


def test_an_incomplete_request_must_be_missing_something():
    with pytest.raises(ValueError):
        request_incomplete(CASE, Regime.DSA_ART16, JANE, [], STATUS)


def test_content_removed_counts_copies_and_explains_the_block_list():
    n = content_removed(CASE, Regime.TAKE_IT_DOWN, JANE, removed=3, copies=2)
    assert "removed 3 items" in n.body
    assert "2 were copies we found by matching" in n.body
    assert "hashes" in n.body and "block list" in n.body and "blocked" in n.body
    one = content_removed(CASE, Regime.TAKE_IT_DOWN, JANE, removed=1, copies=0)
    assert "removed 1 item " in one.body and "did not find any other copies" in one.body
    with pytest.raises(ValueError):
        content_removed(CASE, Regime.TAKE_IT_DOWN, JANE, removed=0, copies=0)
    with pytest.raises(ValueError):
        content_removed(CASE, Regime.TAKE_IT_DOWN, JANE, removed=1, copies=2)


def test_nothing_found_still_banks_and_asks_for_detail():
    n = nothing_found(CASE, Regime.TAKE_IT_DOWN, JANE, banked=True)
    assert "could not find" in n.body
    assert "block list" in n.body
    assert "reply to this message" in n.body and "link" in n.body


def test_rejection_gives_every_reason_and_dsa_redress():
    reasons = ["the link points to a page we do not host", "the image is not intimate"]
    n = request_rejected(CASE, Regime.DSA_ART16, JANE, reasons)
    assert all(f"- {r}" in n.body for r in reasons)
    assert "six months" in n.body and "out-of-court dispute settlement" in n.body
    us = request_rejected(CASE, Regime.TAKE_IT_DOWN, JANE, reasons)
    assert "reply to this message" in us.body and "six months" not in us.body


def test_removal_reversed_tells_the_requester_why():
    n = removal_reversed(CASE, Regime.UK_INTIMATE_IMAGE, JANE, "the image is a painting")
    assert n.recipient == JANE and "the image is a painting" in n.body
    assert "put back" in n.body


@pytest.mark.parametrize("automated", [True, False])
def test_statement_of_reasons_has_what_dsa_article_17_requires(automated: bool):
    n = statement_of_reasons(CASE, Regime.DSA_ART16, "acct-42", ["post-1", "post-9"],
                             CLAUSE, automated=automated, appeal_url=APPEAL)
    assert n.recipient == "account:acct-42"
    assert "- post-1" in n.body and "- post-9" in n.body  # the restriction imposed
    assert CLAUSE in n.body  # the ground
    assert "EU Digital Services Act, Article 16 notice" in n.body  # facts: a notice, which
    assert f"Decided by automated means: {'yes' if automated else 'no'}." in n.body
    assert "strike has been recorded" in n.body
    assert APPEAL in n.body and "within 14 days" in n.body  # redress
    assert "out-of-court dispute settlement" in n.body


def test_statement_of_reasons_appeal_window_is_configurable():
    n = statement_of_reasons(CASE, Regime.UK_INTIMATE_IMAGE, "account:acct-42", ["post-1"],
                             CLAUSE, automated=False, appeal_url=APPEAL, appeal_days=30)
    assert n.recipient == "account:acct-42"  # not doubled
    assert "within 30 days" in n.body
    assert REGIME_NAMES[Regime.UK_INTIMATE_IMAGE] in n.body


def test_uploader_notices_say_nothing_about_the_requester():
    for fn in (statement_of_reasons, restored):
        params = set(inspect.signature(fn).parameters)
        assert not params & {"recipient", "requester", "email", "name"}


def test_restored_names_the_content_and_reason():
    n = restored(CASE, "acct-42", ["post-1", "post-2"], "the appeal was upheld")
    assert n.recipient == "account:acct-42" and n.kind == "restored"
    assert "- post-1" in n.body and "- post-2" in n.body
    assert "the appeal was upheld" in n.body
