"""Server-side sessions: only the token's digest is kept; idle and absolute ends on the
test clock; a new token at every sign-in; logout and revocation (both databases)."""

from __future__ import annotations

import hashlib

import pytest
from counting_passwords import PASSWORD
from sqlalchemy import select

from consentry.people.sessions import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    SECOND_FACTOR_TIMEOUT,
)
from consentry.store.models import UserSession


@pytest.fixture
def alice(directory):
    return directory.create("alice", roles=["moderator"], password=PASSWORD)


def _row(db, token):
    with db.transaction() as s:
        return s.get(UserSession, hashlib.sha256(token.encode()).hexdigest())


def test_only_the_digest_of_the_token_is_stored(db, sessions, alice):
    issued = sessions.start(alice.id, verified=True)
    with db.transaction() as s:
        ids = s.scalars(select(UserSession.id)).all()
    assert ids == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert issued.token not in repr(issued) and issued.csrf_token not in repr(issued)
    live = sessions.resolve(issued.token)
    assert live is not None and live.person.username == "alice" and live.verified
    assert live.csrf_token == issued.csrf_token and len(issued.csrf_token) >= 32


@pytest.mark.parametrize("token", [None, "", "no-such-token", "x" * 10_000])
def test_unknown_tokens_open_nothing(sessions, token):
    assert sessions.resolve(token) is None


def test_a_session_ends_after_thirty_idle_minutes(db, sessions, alice, clock):
    issued = sessions.start(alice.id, verified=True)
    clock.advance(minutes=29)
    assert sessions.resolve(issued.token) is not None  # seen: idle counts from here
    clock.advance(minutes=29)
    assert sessions.resolve(issued.token) is not None
    clock.advance(seconds=IDLE_TIMEOUT.total_seconds())
    assert sessions.resolve(issued.token) is None


def test_last_seen_is_written_at_most_once_a_minute(db, sessions, alice, clock):
    issued = sessions.start(alice.id, verified=True)
    started = clock.now
    clock.advance(seconds=59)
    sessions.resolve(issued.token)
    assert _row(db, issued.token).last_seen_at == started
    clock.advance(seconds=1)
    sessions.resolve(issued.token)
    assert _row(db, issued.token).last_seen_at == clock.now


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(sessions, alice, clock):
    issued = sessions.start(alice.id, verified=True)
    assert issued.expires_at == clock.now + ABSOLUTE_TIMEOUT
    for _ in range(12 * 4 - 1):
        clock.advance(minutes=15)
        assert sessions.resolve(issued.token) is not None
    clock.advance(minutes=15)
    assert sessions.resolve(issued.token) is None


def test_signing_in_again_replaces_the_session_the_browser_had(sessions, alice):
    old = sessions.start(alice.id, verified=True)
    new = sessions.start(alice.id, verified=True, replacing=old.token)
    assert new.token != old.token and new.csrf_token != old.csrf_token
    assert sessions.resolve(old.token) is None
    assert sessions.resolve(new.token) is not None


def test_other_sessions_of_the_same_person_survive_a_sign_in(sessions, alice):
    laptop = sessions.start(alice.id, verified=True)
    sessions.start(alice.id, verified=True)  # a phone, with no cookie of its own yet
    assert sessions.resolve(laptop.token) is not None


def test_logout_ends_the_session(sessions, alice):
    issued = sessions.start(alice.id, verified=True)
    sessions.end(issued.token)
    assert sessions.resolve(issued.token) is None
    sessions.end(issued.token)  # twice: nothing more to do
    sessions.end(None)


def test_a_session_owing_its_second_factor_is_pending_and_short(sessions, alice, clock):
    issued = sessions.start(alice.id, verified=False)
    live = sessions.resolve(issued.token)
    assert live is not None and not live.verified
    assert issued.expires_at == clock.now + SECOND_FACTOR_TIMEOUT
    clock.advance(seconds=SECOND_FACTOR_TIMEOUT.total_seconds())
    assert sessions.resolve(issued.token) is None


def test_disabling_a_person_ends_every_session_and_enabling_revives_none(
        sessions, directory, alice):
    a, b = (sessions.start(alice.id, verified=True) for _ in range(2))
    directory.disable("alice")
    assert sessions.resolve(a.token) is None and sessions.resolve(b.token) is None
    directory.enable("alice")
    assert sessions.resolve(a.token) is None


def test_a_password_reset_ends_every_session(sessions, directory, alice):
    issued = sessions.start(alice.id, verified=True)
    directory.reset_password("alice", "another long password")
    assert sessions.resolve(issued.token) is None


def test_revoke_all_and_prune(sessions, alice, clock):
    issued = sessions.start(alice.id, verified=True)
    assert sessions.revoke_all(alice.id) == 1
    assert sessions.resolve(issued.token) is None
    assert sessions.prune() == 0
    clock.advance(days=8)
    assert sessions.prune() == 1


def test_roles_changed_apply_to_the_next_request(sessions, directory, alice):
    issued = sessions.start(alice.id, verified=True)
    directory.set_roles("alice", ["compliance"])
    live = sessions.resolve(issued.token)
    assert live is not None and {r.value for r in live.person.roles} == {"compliance"}
