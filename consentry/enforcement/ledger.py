"""Reads and appends strikes and suspensions. Rows are never updated except to record
that a strike was revoked or a suspension lifted (appeals), so history stays whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    String,
    bindparam,
    cast,
    false,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from consentry.enforcement.standing import (
    Consequence,
    Standing,
    StrikeEntry,
    SuspensionEntry,
    derive_standing,
)
from consentry.policy.document import Policy
from consentry.store.database import Database
from consentry.store.dialect import upsert_insert
from consentry.store.models import Account, Strike, Suspension


def ensure_account(session: Session, account_id: str, now: datetime, *, lock: bool = False) -> None:
    """Create the account row if needed; with ``lock``, hold it until the transaction ends
    so that two concurrent refusals cannot both miss a suspension threshold."""
    # Two first requests of a new account may race: let the database settle it.
    session.execute(upsert_insert(session, Account).values(id=account_id, created_at=now)
                    .on_conflict_do_nothing(index_elements=[Account.id]))
    if lock:
        session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


@dataclass(frozen=True)
class AccountOnRecord:
    """An account's standing, and whether it has a row yet (a check can then refer to it
    without the insert that creates it)."""

    standing: Standing
    exists: bool


def load_standing(session: Session | Connection, account_id: str, now: datetime) -> Standing:
    return _account(session, account_id, now).standing


def read_account(db: Database, account_id: str, now: datetime) -> AccountOnRecord:
    """The account as it stands now, read outside any transaction (one statement, one
    round trip): the read before analysis on every request of an account. A ruling that
    costs the account something reads it again under a lock (``ensure_account``)."""
    with db.reading() as conn:
        return _account(conn, account_id, now)


def _account_history() -> Any:
    # One statement for the account row, its live strikes and its suspensions. Columns:
    # kind, clause, weight, reason, start, end, revoked or lifted, pending review.
    account: BindParameter[str] = bindparam("account")  # typed by the columns it meets
    now: BindParameter[datetime] = bindparam("now")
    int_null, text_null = cast(null(), Integer), cast(null(), String)
    return union_all(
        select(literal("s"), Strike.clause, Strike.weight, text_null, Strike.created_at,
               Strike.expires_at, Strike.revoked_at, false())
        .where(Strike.account_id == account, Strike.expires_at > now),
        select(literal("u"), Suspension.clause, int_null, Suspension.reason,
               Suspension.starts_at, Suspension.ends_at, Suspension.lifted_at,
               Suspension.pending_review)
        .where(Suspension.account_id == account),
        select(literal("a"), text_null, int_null, text_null, Account.created_at,
               Account.created_at, Account.created_at, false())
        .where(Account.id == account),
    )


# Built once: it runs on every request of an account, and a statement object reused keeps
# its cache key (building and keying it each time cost about as much as running it).
_ACCOUNT_HISTORY = _account_history()


def _account(conn: Session | Connection, account_id: str, now: datetime) -> AccountOnRecord:
    rows: list[Any] = list(conn.execute(_ACCOUNT_HISTORY, {"account": account_id, "now": now}))
    strikes = [StrikeEntry(c, w, start, end, ended)
               for kind, c, w, _, start, end, ended, _ in rows if kind == "s"]
    suspensions = [SuspensionEntry(c, reason, start, end, ended, bool(pending))
                   for kind, c, _, reason, start, end, ended, pending in rows if kind == "u"]
    return AccountOnRecord(derive_standing(account_id, strikes, suspensions, now),
                           exists=any(row[0] == "a" for row in rows))


def record_consequence(
    session: Session,
    account_id: str,
    clause: str,
    consequence: Consequence,
    check_id: str | None,
    now: datetime,
    *,
    takedown_case: str | None = None,
) -> None:
    if consequence.strike_weight:
        session.add(Strike(account_id=account_id, check_id=check_id, clause=clause,
                           weight=consequence.strike_weight, created_at=now,
                           expires_at=consequence.strike_expires_at,
                           takedown_case=takedown_case))
    if consequence.suspends:
        ends = None if consequence.permanent else consequence.suspend_until
        session.add(Suspension(account_id=account_id, check_id=check_id, clause=clause,
                               reason=consequence.suspension_reason or clause, starts_at=now,
                               ends_at=ends, pending_review=consequence.pending_review))



def undo_check(session: Session, account_id: str, check_id: str, now: datetime,
               policy: Policy) -> tuple[int, int]:
    """What a check cost an account, undone (a refusal overturned): its strikes revoked,
    its suspensions lifted, and suspensions that earlier strikes no longer support lifted
    too. Returns (strikes revoked, suspensions lifted)."""
    strikes = session.scalars(select(Strike).where(
        Strike.account_id == account_id, Strike.check_id == check_id,
        Strike.revoked_at.is_(None))).all()
    for strike in strikes:
        strike.revoked_at = now
    suspensions = session.scalars(select(Suspension).where(
        Suspension.account_id == account_id, Suspension.check_id == check_id,
        Suspension.lifted_at.is_(None))).all()
    for suspension in suspensions:
        suspension.lifted_at = now
    session.flush()
    return len(strikes), len(suspensions) + lift_unsupported(session, account_id, now, policy)


def lift_unsupported(session: Session, account_id: str, now: datetime, policy: Policy) -> int:
    """Lift strike-threshold suspensions the account's active strikes no longer reach
    (after a strike was revoked). Suspensions under a clause that suspends by itself
    (CS-1, KM-1) are not strike-threshold suspensions and stay."""
    standing = load_standing(session, account_id, now)
    by_itself = {cid for cid, c in policy.clauses.items() if c.permanent_suspension}
    lifted = 0
    for row in session.scalars(select(Suspension).where(
            Suspension.account_id == account_id, Suspension.lifted_at.is_(None),
            Suspension.clause.not_in(by_itself))):
        if not (row.ends_at is None or row.ends_at > now):
            continue
        needed = min((r.active_strikes for r in policy.enforcement.suspensions
                      if r.permanent == (row.ends_at is None)), default=None)
        if needed is not None and standing.active_strikes < needed:
            row.lifted_at = now
            lifted += 1
    return lifted
