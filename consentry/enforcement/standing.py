"""Account standing and the consequences of a ruling. Pure: records and a clock in,
decisions out. The ledger (``ledger.py``) does the reading and writing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from consentry.policy import Policy, Ruling


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PERMANENTLY_SUSPENDED = "permanently_suspended"


@dataclass(frozen=True)
class StrikeEntry:
    clause: str
    weight: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True)
class SuspensionEntry:
    clause: str
    reason: str
    starts_at: datetime
    ends_at: datetime | None  # None: permanent (or until reviewed, when pending_review)
    lifted_at: datetime | None = None
    pending_review: bool = False  # in force until a reviewer confirms or lifts it

    def in_force(self, now: datetime) -> bool:
        if self.lifted_at is not None or self.starts_at > now:
            return False
        return self.ends_at is None or self.ends_at > now


@dataclass(frozen=True)
class Standing:
    """Where an account stands now, derived from its append-only history."""

    account_id: str
    status: AccountStatus
    active_strikes: int
    suspended_until: datetime | None  # None while active or when permanent
    suspension_clause: str | None

    @property
    def suspended(self) -> bool:
        return self.status is not AccountStatus.ACTIVE


def derive_standing(
    account_id: str,
    strikes: Sequence[StrikeEntry],
    suspensions: Sequence[SuspensionEntry],
    now: datetime,
) -> Standing:
    active = sum(s.weight for s in strikes if s.active(now))
    in_force = [s for s in suspensions if s.in_force(now)]
    permanent = next((s for s in in_force if s.ends_at is None and not s.pending_review),
                     None)
    if permanent is not None:
        return Standing(account_id, AccountStatus.PERMANENTLY_SUSPENDED, active, None,
                        permanent.clause)
    pending = next((s for s in in_force if s.pending_review), None)
    if pending is not None:  # suspended until a reviewer decides: no end date yet
        return Standing(account_id, AccountStatus.SUSPENDED, active, None, pending.clause)
    if in_force:
        longest = max(in_force, key=lambda s: s.ends_at)  # type: ignore[arg-type, return-value]
        return Standing(account_id, AccountStatus.SUSPENDED, active, longest.ends_at,
                        longest.clause)
    return Standing(account_id, AccountStatus.ACTIVE, active, None, None)


def costs_anything(ruling: Ruling, policy: Policy) -> bool:
    """Whether the ruling can strike or suspend: only then must the account be locked."""
    if ruling.decision != "block":
        return False
    clause = policy.clause(ruling.clause)
    return clause.strike_weight > 0 or clause.permanent_suspension


@dataclass(frozen=True)
class Consequence:
    """What a ruling costs the account. Nothing at all for allow and review."""

    strike_weight: int = 0
    strike_expires_at: datetime | None = None
    suspend_until: datetime | None = None
    permanent: bool = False
    suspension_reason: str | None = None
    suspension_clause: str | None = None
    # A CS-1 ruling suspends at once, but the permanent suspension waits for a human:
    # the account is suspended pending a child-safety reviewer's confirmation.
    pending_review: bool = False

    @property
    def suspends(self) -> bool:
        return self.permanent or self.suspend_until is not None or self.pending_review


def consequence_of(ruling: Ruling, before: Standing, policy: Policy, now: datetime) -> Consequence:
    """Apply the enforcement defaults of the policy to one ruling."""
    if ruling.decision != "block":
        return Consequence()
    clause = policy.clause(ruling.clause)
    rules = policy.enforcement
    expires = now + timedelta(days=rules.strike_expiry_days)
    if clause.permanent_suspension:
        reason = f"{ruling.clause}: {clause.title}"
        if clause.confirm_within_hours is not None:
            # Errors that end accounts are the worst errors: suspended now, permanent only
            # when a child-safety reviewer confirms (policy: CS-1).
            return Consequence(strike_weight=0, pending_review=True,
                               suspension_reason=reason, suspension_clause=ruling.clause)
        return Consequence(strike_weight=0, permanent=True, suspension_reason=reason,
                           suspension_clause=ruling.clause)
    if clause.strike_weight == 0:
        return Consequence()
    return _threshold_consequence(clause.strike_weight, before, policy, now, expires, ruling.clause)


def _threshold_consequence(
    weight: int,
    before: Standing,
    policy: Policy,
    now: datetime,
    expires: datetime,
    clause_id: str,
) -> Consequence:
    total = before.active_strikes + weight
    # The harshest rule whose threshold the new total reaches applies.
    reached = [r for r in policy.enforcement.suspensions if total >= r.active_strikes]
    if not reached:
        return Consequence(weight, expires)
    rule = max(reached, key=lambda r: r.active_strikes)
    reason = f"{total} active strikes (latest under {clause_id})"
    if rule.permanent:
        return Consequence(weight, expires, permanent=True, suspension_reason=reason,
                           suspension_clause=clause_id)
    until = now + timedelta(days=rule.days or 0)
    if before.suspended_until is not None and before.suspended_until >= until:
        return Consequence(weight, expires)
    return Consequence(weight, expires, suspend_until=until, suspension_reason=reason,
                       suspension_clause=clause_id)


def standing_after(before: Standing, consequence: Consequence) -> Standing:
    """The standing once ``consequence`` is recorded (same result as re-deriving it)."""
    strikes = before.active_strikes + consequence.strike_weight
    if consequence.pending_review and before.status is not \
            AccountStatus.PERMANENTLY_SUSPENDED:
        return Standing(before.account_id, AccountStatus.SUSPENDED, strikes, None,
                        consequence.suspension_clause)
    if before.status is AccountStatus.PERMANENTLY_SUSPENDED or consequence.permanent:
        clause = before.suspension_clause if before.status is \
            AccountStatus.PERMANENTLY_SUSPENDED else consequence.suspension_clause
        return Standing(before.account_id, AccountStatus.PERMANENTLY_SUSPENDED, strikes, None,
                        clause)
    ends = [t for t in (before.suspended_until, consequence.suspend_until) if t is not None]
    if not ends:
        return Standing(before.account_id, AccountStatus.ACTIVE, strikes, None, None)
    until = max(ends)
    clause = (consequence.suspension_clause if until == consequence.suspend_until
              else before.suspension_clause)
    return Standing(before.account_id, AccountStatus.SUSPENDED, strikes, until, clause)
