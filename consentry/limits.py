"""Limits on attempts, shared by every replica and counted atomically in the database.

- ``RateLimit``: at most ``limit`` requests of one kind from one client in a sliding
  window (two fixed windows, the older weighted by how much of it still overlaps).
- ``first_use``: something that may be used once in a fixed window (a TOTP code).
- Guesses at a secret (a takedown case's PIN): at most ``GUESSES_BEFORE_LOCK`` unconfirmed
  guesses per target and client, then a lock that doubles with each further lock.

Both count *before* the work and settle after it: a request reserves its attempt in one
atomic statement, so concurrent requests cannot all slip through between a check and a
count (as they did when the count was read first and written after the PIN check).

Clients are identified by a SHA-256 of their address (resolved at the edge, which knows
which proxies to trust); addresses themselves are never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select, update

from consentry.errors import TooManyAttempts
from consentry.store import Database
from consentry.store.dialect import upsert_insert
from consentry.store.models import AttemptGuard, RateWindow

GUESSES_BEFORE_LOCK: Final = 5
FIRST_LOCK: Final = timedelta(minutes=15)
_MAX_DOUBLINGS: Final = 8  # the longest lock is 15 min x 2^8 = 64 h
_KEEP_GUARDS: Final = timedelta(days=7)
_KEEP_WINDOWS: Final = timedelta(days=2)


def client_key(address: str) -> str:
    """What is stored for a client: a digest of its address, never the address."""
    return hashlib.sha256(address.encode()).hexdigest()


@dataclass(frozen=True)
class RateLimit:
    scope: str  # what is limited, e.g. "takedown_submit"
    limit: int
    window_s: int
    code: str = "too_many_requests"
    message: str = "too many requests from here; try again later"


@dataclass(frozen=True)
class Ticket:
    """A reserved request, to give back with ``Limits.refund`` when it should not count
    (a failed-guess limit refunds the guesses that were right)."""

    rule: RateLimit
    client: str
    window: int


def lock_for(locks: int) -> timedelta:
    """How long the ``locks``-th lock lasts (1: 15 minutes, doubling after)."""
    return FIRST_LOCK * (2 ** min(max(locks - 1, 0), _MAX_DOUBLINGS))


class Limits:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- rate limits ------------------------------------------------------------------

    def take(self, rule: RateLimit, address: str) -> Ticket:
        """Count one request; raise ``TooManyAttempts`` (and count nothing) when the
        client is over ``rule``'s limit."""
        client = client_key(address)
        now = self._clock().timestamp()
        window = int(now // rule.window_s) * rule.window_s
        with self.db.transaction() as s:
            count = s.scalar(
                upsert_insert(s, RateWindow)
                .values(scope=rule.scope, client=client, window=window, count=1)
                .on_conflict_do_update(index_elements=["scope", "client", "window"],
                                       set_={"count": RateWindow.count + 1})
                .returning(RateWindow.count))
            before = s.scalar(select(RateWindow.count).where(
                RateWindow.scope == rule.scope, RateWindow.client == client,
                RateWindow.window == window - rule.window_s)) or 0
        overlap = 1 - (now - window) / rule.window_s
        ticket = Ticket(rule, client, window)
        if before * overlap + (count or 0) > rule.limit:
            self.refund(ticket)
            raise TooManyAttempts(rule.message, code=rule.code,
                                  retry_after_s=int(window + rule.window_s - now) + 1)
        return ticket

    def refund(self, ticket: Ticket) -> None:
        with self.db.transaction() as s:
            s.execute(update(RateWindow).where(
                RateWindow.scope == ticket.rule.scope, RateWindow.client == ticket.client,
                RateWindow.window == ticket.window, RateWindow.count > 0)
                .values(count=RateWindow.count - 1))

    def first_use(self, scope: str, subject: str, window: int) -> bool:
        """Count one use of something that may be used once per fixed window (a TOTP
        code in its 30-second step): True for the first use of ``subject`` in ``window``
        (epoch seconds it starts at), False after. Atomic: of concurrent uses, one wins."""
        with self.db.transaction() as s:
            count = s.scalar(
                upsert_insert(s, RateWindow)
                .values(scope=scope, client=client_key(subject), window=window, count=1)
                .on_conflict_do_update(index_elements=["scope", "client", "window"],
                                       set_={"count": RateWindow.count + 1})
                .returning(RateWindow.count))
        return count == 1

    # -- guesses at a secret ----------------------------------------------------------

    def admit_guess(self, target: str, address: str) -> None:
        """Reserve one guess at ``target`` (a case number as typed) for this client, or
        raise ``TooManyAttempts`` while it is locked or while ``GUESSES_BEFORE_LOCK``
        unconfirmed guesses are already in flight or failed."""
        client = client_key(address)
        now = self._clock()
        with self.db.transaction() as s:
            s.execute(upsert_insert(s, AttemptGuard)
                      .values(target=target, client=client, attempts=0, locks=0,
                              updated_at=now)
                      .on_conflict_do_nothing(index_elements=["target", "client"]))
            guard = s.scalars(select(AttemptGuard).where(
                AttemptGuard.target == target, AttemptGuard.client == client)
                .with_for_update()).one()
            if guard.locked_until is not None and guard.locked_until > now:
                raise _locked(guard.locked_until, now)
            if guard.attempts >= GUESSES_BEFORE_LOCK:
                # Earlier guesses are still being checked: they will lock it or clear it.
                raise _locked(now + timedelta(minutes=1), now)
            guard.attempts += 1
            guard.updated_at = now

    def settle_guess(self, target: str, address: str, *, right: bool) -> None:
        """Record how a guess admitted by ``admit_guess`` ended: a right guess clears the
        count; the guess that completes ``GUESSES_BEFORE_LOCK`` wrong ones locks."""
        client = client_key(address)
        now = self._clock()
        with self.db.transaction() as s:
            guard = s.scalars(select(AttemptGuard).where(
                AttemptGuard.target == target, AttemptGuard.client == client)
                .with_for_update()).first()
            if guard is None:
                return
            if right:
                guard.attempts, guard.locks, guard.locked_until = 0, 0, None
            elif guard.attempts >= GUESSES_BEFORE_LOCK:
                guard.locks += 1
                guard.locked_until = now + lock_for(guard.locks)
                guard.attempts = 0
            guard.updated_at = now

    def prune(self) -> None:
        """Forget windows and guards nobody needs any more (run now and then)."""
        now = self._clock()
        with self.db.transaction() as s:
            s.execute(delete(RateWindow).where(
                RateWindow.window < int((now - _KEEP_WINDOWS).timestamp())))
            s.execute(delete(AttemptGuard).where(
                AttemptGuard.updated_at < now - _KEEP_GUARDS,
                (AttemptGuard.locked_until.is_(None)) | (AttemptGuard.locked_until < now)))


def _locked(until: datetime, now: datetime) -> TooManyAttempts:
    return TooManyAttempts(f"too many wrong PINs; try again after {until:%H:%M} UTC",
                           code="case_locked", until=until,
                           retry_after_s=max(1, int((until - now).total_seconds())))
