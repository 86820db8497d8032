"""Console sessions, kept on the server (``user_sessions``).

- The browser holds a random token; only its SHA-256 is stored, so a copy of the table
  signs nobody in.
- A session ends after ``IDLE_TIMEOUT`` without a request or ``ABSOLUTE_TIMEOUT`` after it
  began, whichever is first; ``last_seen_at`` is written at most once a ``TOUCH_EVERY``
  (a page of requests costs one write, not one each).
- Every sign-in makes a new session with a new token and revokes the one the browser
  had (fixation: a token planted before sign-in is worthless after it). Giving the
  second factor is a sign-in step too: the pending session is replaced.
- A session of a person with TOTP is pending (``verified_at`` unset) until the code is
  given; pending sessions last ``SECOND_FACTOR_TIMEOUT`` and open nothing but the code
  page.
- Each session has its own CSRF token for the forms it shows.
- Logout revokes; disabling a person or setting their password revokes all of theirs
  (``revoke_sessions``, in the same transaction as that change).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from consentry.people.person import Person, person_of
from consentry.store import Database
from consentry.store.models import User, UserSession

IDLE_TIMEOUT: Final = timedelta(minutes=30)
ABSOLUTE_TIMEOUT: Final = timedelta(hours=12)
SECOND_FACTOR_TIMEOUT: Final = timedelta(minutes=5)
TOUCH_EVERY: Final = timedelta(minutes=1)
_KEEP_ENDED: Final = timedelta(days=7)
_MAX_TOKEN_CHARS: Final = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSession:
    """A session just begun: ``token`` goes in the cookie and is not kept anywhere."""

    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: datetime
    verified: bool


@dataclass(frozen=True)
class LiveSession:
    """A session a request presented, still in force, with the person it signs in."""

    id: str  # the token's digest
    person: Person
    csrf_token: str = field(repr=False)
    created_at: datetime
    expires_at: datetime
    verified: bool


def revoke_sessions(s: Session, user_id: int, at: datetime) -> int:
    """Revoke every session of a person, inside the caller's transaction; how many."""
    result = s.execute(update(UserSession)
                       .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                       .values(revoked_at=at))
    return int(getattr(result, "rowcount", 0) or 0)


class Sessions:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self._clock()

    def start(self, user_id: int, *, verified: bool,
              replacing: str | None = None) -> IssuedSession:
        """Begin a session for a person who has just signed in (``verified``: nothing
        more is owed; else the TOTP code is). The session of ``replacing`` (the token the
        browser held, whoever's it was) is revoked in the same transaction."""
        now = self._clock()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now + (ABSOLUTE_TIMEOUT if verified else SECOND_FACTOR_TIMEOUT)
        with self.db.transaction() as s:
            if replacing:
                s.execute(update(UserSession)
                          .where(UserSession.id == _digest(replacing),
                                 UserSession.revoked_at.is_(None))
                          .values(revoked_at=now))
            s.add(UserSession(id=_digest(token), user_id=user_id, csrf_token=csrf,
                              created_at=now, last_seen_at=now, expires_at=expires,
                              verified_at=now if verified else None))
        return IssuedSession(token, csrf, expires, verified)

    def resolve(self, token: str | None) -> LiveSession | None:
        """The session ``token`` opens, or None: unknown, revoked, idle too long, past
        its end, or its person disabled. Marks it seen (at most once a minute)."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return None
        now = self._clock()
        with self.db.transaction() as s:
            found = s.execute(select(UserSession, User)
                              .join(User, User.id == UserSession.user_id)
                              .where(UserSession.id == _digest(token))).first()
            if found is None:
                return None
            session, user = found
            if (session.revoked_at is not None or now >= session.expires_at
                    or now >= session.last_seen_at + IDLE_TIMEOUT
                    or user.disabled_at is not None):
                return None
            if now - session.last_seen_at >= TOUCH_EVERY:
                session.last_seen_at = now
            return LiveSession(id=session.id, person=person_of(user),
                               csrf_token=session.csrf_token, created_at=session.created_at,
                               expires_at=session.expires_at,
                               verified=session.verified_at is not None)

    def end(self, token: str | None) -> None:
        """Sign out: revoke the session ``token`` opens (nothing if none)."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return
        with self.db.transaction() as s:
            s.execute(update(UserSession)
                      .where(UserSession.id == _digest(token), UserSession.revoked_at.is_(None))
                      .values(revoked_at=self._clock()))

    def revoke_all(self, user_id: int) -> int:
        """Sign a person out everywhere; how many sessions were open."""
        with self.db.transaction() as s:
            return revoke_sessions(s, user_id, self._clock())

    def prune(self) -> int:
        """Forget sessions that ended a week ago or more; how many."""
        cutoff = self._clock() - _KEEP_ENDED
        with self.db.transaction() as s:
            result = s.execute(delete(UserSession).where(or_(
                UserSession.expires_at < cutoff, UserSession.revoked_at < cutoff)))
            return int(getattr(result, "rowcount", 0) or 0)
