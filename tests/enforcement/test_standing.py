"""Strike weights, expiry and suspension thresholds as POLICY.md sets them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consentry.enforcement.standing import (
    AccountStatus,
    StrikeEntry,
    SuspensionEntry,
    consequence_of,
    derive_standing,
)
from consentry.policy import MinorEvidence, Ruling, load_policy

POLICY = load_policy()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def strikes(n: int, *, age_days: int = 1, weight: int = 1) -> list[StrikeEntry]:
    created = NOW - timedelta(days=age_days)
    return [StrikeEntry("II-1", weight, created, created + timedelta(days=180))
            for _ in range(n)]


def standing(n: int = 0, **kw):
    return derive_standing("acct", strikes(n, **kw), [], NOW)


def test_strikes_expire_after_180_days():
    assert standing(2, age_days=179).active_strikes == 2
    assert standing(2, age_days=181).active_strikes == 0


def test_revoked_strikes_do_not_count():
    s = StrikeEntry("II-1", 1, NOW, NOW + timedelta(days=180), revoked_at=NOW)
    assert derive_standing("acct", [s], [], NOW).active_strikes == 0


def test_third_strike_suspends_for_seven_days():
    c = consequence_of(Ruling("block", "II-1", ()), standing(2), POLICY, NOW)
    assert c.strike_weight == 1
    assert c.suspend_until == NOW + timedelta(days=7)
    assert not c.permanent


def test_second_strike_does_not_suspend():
    c = consequence_of(Ruling("block", "II-1", ()), standing(1), POLICY, NOW)
    assert (c.strike_weight, c.suspends) == (1, False)


def test_fifth_strike_is_permanent():
    c = consequence_of(Ruling("block", "II-1", ()), standing(4), POLICY, NOW)
    assert c.permanent


def test_hash_match_weighs_two():
    c = consequence_of(Ruling("block", "II-3", ()), standing(1), POLICY, NOW)
    assert c.strike_weight == 2 and c.suspend_until is not None


def test_cs_1_suspends_at_once_but_only_a_reviewer_makes_it_permanent():
    for evidence in (MinorEvidence.STATED, MinorEvidence.CHALLENGE_AGE):
        c = consequence_of(Ruling("block", "CS-1", (), minor_evidence=evidence),
                           standing(0), POLICY, NOW)
        assert (c.suspends, c.permanent, c.pending_review) == (True, False, True)
    pending = SuspensionEntry("CS-1", "cs", NOW, None, pending_review=True)
    held = derive_standing("a", [], [pending], NOW)
    assert (held.status, held.suspended_until) == (AccountStatus.SUSPENDED, None)


def test_km_1_is_permanent_at_once():
    c = consequence_of(Ruling("block", "KM-1", ()), standing(0), POLICY, NOW)
    assert c.permanent and not c.pending_review


def test_allow_review_and_sx_1_cost_nothing():
    for ruling in (Ruling("allow", "OK-1", ()), Ruling("review", "RV-1", ()),
                   Ruling("block", "SX-1", ()), Ruling("block", "FC-1", ())):
        c = consequence_of(ruling, standing(2), POLICY, NOW)
        assert (c.strike_weight, c.suspends) == (0, False)


def test_suspension_status_is_derived_from_history():
    temp = SuspensionEntry("II-1", "3 strikes", NOW - timedelta(days=1), NOW + timedelta(days=6))
    ended = SuspensionEntry("II-1", "3 strikes", NOW - timedelta(days=9), NOW - timedelta(days=2))
    lifted = SuspensionEntry("CS-1", "cs", NOW - timedelta(days=1), None, lifted_at=NOW)
    assert derive_standing("a", [], [temp], NOW).status is AccountStatus.SUSPENDED
    assert derive_standing("a", [], [ended, lifted], NOW).status is AccountStatus.ACTIVE
    perm = SuspensionEntry("CS-1", "cs", NOW, None)
    assert derive_standing("a", [], [temp, perm], NOW).status is \
        AccountStatus.PERMANENTLY_SUSPENDED


def test_standing_after_a_consequence_equals_rederiving_it():
    from consentry.enforcement.standing import standing_after

    for n in range(6):
        for clause in ("II-1", "II-3", "CS-1", "KM-1"):
            history = strikes(n)
            before = derive_standing("acct", history, [], NOW)
            c = consequence_of(Ruling("block", clause, (), minor_evidence=MinorEvidence.STATED),
                               before, POLICY, NOW)
            new_strikes = history + ([StrikeEntry(clause, c.strike_weight, NOW,
                                                  c.strike_expires_at)]
                                     if c.strike_weight else [])
            new_susp = [SuspensionEntry(clause, "r", NOW, None if c.permanent
                                        else c.suspend_until,
                                        pending_review=c.pending_review)] if c.suspends else []
            assert standing_after(before, c) == derive_standing("acct", new_strikes, new_susp,
                                                                NOW), (n, clause)
