"""The account read on every request: one statement outside any transaction, the same
standing as the locked read that strikes use, and no write lock held while it runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from consentry.enforcement.ledger import ensure_account, load_standing, read_account
from consentry.enforcement.standing import AccountStatus
from consentry.store.models import Strike, Suspension

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_an_unknown_account_is_active_and_not_on_record(db):
    found = read_account(db, "nobody", NOW)
    assert not found.exists
    assert (found.standing.status, found.standing.active_strikes) == (AccountStatus.ACTIVE, 0)


def test_the_read_agrees_with_the_locked_read_over_a_mixed_history(db):
    day = timedelta(days=1)
    with db.transaction() as s:
        ensure_account(s, "acct", NOW - 30 * day)
        s.add_all([
            Strike(account_id="acct", clause="II-1", weight=1, created_at=NOW - 200 * day,
                   expires_at=NOW - 20 * day),  # expired
            Strike(account_id="acct", clause="II-1", weight=1, created_at=NOW - 5 * day,
                   expires_at=NOW + 175 * day, revoked_at=NOW - day),  # revoked on appeal
            Strike(account_id="acct", clause="II-3", weight=2, created_at=NOW - 3 * day,
                   expires_at=NOW + 177 * day),
            Strike(account_id="acct", clause="II-2", weight=1, created_at=NOW - 2 * day,
                   expires_at=NOW + 178 * day),
            Suspension(account_id="acct", clause="II-1", reason="3 active strikes",
                       starts_at=NOW - 10 * day, ends_at=NOW - 3 * day),  # over
            Suspension(account_id="acct", clause="CS-1", reason="CS-1",
                       starts_at=NOW - day, ends_at=None, pending_review=True),
        ])
    found = read_account(db, "acct", NOW)
    assert found.exists
    assert found.standing.active_strikes == 3
    assert (found.standing.status, found.standing.suspension_clause) == (
        AccountStatus.SUSPENDED, "CS-1")
    with db.transaction() as s:
        assert load_standing(s, "acct", NOW) == found.standing
    # Lifted by a reviewer: the strikes remain, the account is active again.
    with db.transaction() as s:
        s.query(Suspension).filter_by(clause="CS-1").update({"lifted_at": NOW})
    assert read_account(db, "acct", NOW).standing.status is AccountStatus.ACTIVE


def test_the_read_waits_for_no_writer_and_sees_only_what_is_committed(db):
    with db.transaction() as s:
        ensure_account(s, "new", NOW)
        s.flush()
        # A writer holds its transaction open (on SQLite: the write lock). The read runs
        # on another connection and must neither wait for it nor see its uncommitted row.
        started = time.perf_counter()
        found = read_account(db, "new", NOW)
        assert time.perf_counter() - started < 2.0
        assert not found.exists
    assert read_account(db, "new", NOW).exists
