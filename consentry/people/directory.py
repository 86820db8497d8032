"""The people who may sign in to the console: creating them, their roles, passwords and
second factor, disabling them, and signing them in.

Sign-in answers alike for an unknown username, a disabled person and a wrong password
("wrong username or password"), after the same argon2 work, so neither the answer nor its
timing tells which usernames exist. Failures are limited per username and per client
(``ACCOUNT_LIMIT``, ``CLIENT_LIMIT``), reserved atomically in the database before the
password is checked (``consentry.limits``), so concurrent guesses cannot slip past the
limit; a sign-in that succeeds gives its reservation back. TOTP codes count against the
same limits. Passwords and codes are never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry import audit
from consentry.errors import Conflict, InvalidRequest, NotFound, TooManyAttempts, Unauthenticated
from consentry.limits import Limits, RateLimit, Ticket
from consentry.people import totp
from consentry.people.passwords import Passwords, check_password
from consentry.people.person import Person, person_of
from consentry.people.roles import Role, parse_roles
from consentry.people.sessions import revoke_sessions
from consentry.people.totp import SecretBox
from consentry.store import Database
from consentry.store.models import User

log = logging.getLogger(__name__)

USERNAME: Final = re.compile(r"^[a-z0-9._-]{3,64}$")
MAX_DISPLAY_NAME: Final = 200
WRONG_CREDENTIALS: Final = "wrong username or password"
ACCOUNT_LIMIT: Final = RateLimit(
    "sign_in_account", limit=10, window_s=15 * 60, code="too_many_sign_ins",
    message="too many failed sign-ins for this username; try again in a few minutes")
CLIENT_LIMIT: Final = RateLimit(
    "sign_in_client", limit=20, window_s=15 * 60, code="too_many_sign_ins",
    message="too many failed sign-ins from here; try again in a few minutes")
TOTP_OFFER_TTL_S: Final = 15 * 60  # how long an offered secret may wait for its first code


@dataclass(frozen=True)
class TotpOffer:
    """A new second factor offered to a person, not yet theirs: they add ``uri`` (or
    ``secret``) to an authenticator app and confirm with a code. ``sealed`` carries the
    secret through the confirming form, encrypted and bound to the person."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)
    sealed: str = field(repr=False)


def normalise_username(username: str) -> str:
    """The stored form of a username: trimmed and lower-cased."""
    return username.strip().lower()


def _valid_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise InvalidRequest("invalid_username", "a username is 3 to 64 characters of "
                             "a-z, 0-9, '.', '_' and '-'", field="username")
    return name


def _display_name(display_name: str | None, username: str) -> str:
    name = " ".join((display_name or "").split()) or username
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidRequest("invalid_display_name", f"a display name is at most "
                             f"{MAX_DISPLAY_NAME} characters", field="display_name")
    return name


class Directory:
    def __init__(self, db: Database, *, secrets: SecretBox, passwords: Passwords | None = None,
                 limits: Limits | None = None, clock: Callable[[], datetime] | None = None,
                 account_limit: RateLimit = ACCOUNT_LIMIT,
                 client_limit: RateLimit = CLIENT_LIMIT) -> None:
        self.db = db
        audit.install()  # changes to people and roles are links of the audit chain
        self.secrets = secrets
        self.passwords = passwords or Passwords()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.limits = limits or Limits(db, clock=self._clock)
        self.account_limit = account_limit
        self.client_limit = client_limit

    # -- people -----------------------------------------------------------------------

    def create(self, username: str, *, roles: Iterable[Role | str], password: str,
               display_name: str | None = None) -> Person:
        """Add a person. ``InvalidRequest`` for a bad username, display name, role or
        password (the policy's words); ``Conflict`` when the username is taken."""
        name = _valid_username(username)
        shown = _display_name(display_name, name)
        granted = parse_roles(roles)
        check_password(password, name)
        now = self._clock()
        user = User(username=name, display_name=shown, password_hash=self.passwords.hash(password),
                    roles=sorted(r.value for r in granted), totp_secret=None, created_at=now,
                    password_changed_at=now, disabled_at=None)
        try:
            with self.db.transaction() as s:
                if s.scalar(select(User.id).where(User.username == name)) is not None:
                    raise _taken(name)
                s.add(user)
                s.flush()
                person = person_of(user)
        except IntegrityError:  # created at the same moment by someone else
            raise _taken(name) from None
        log.info("person %s created with roles %s", name, ", ".join(sorted(user.roles)))
        return person

    def get(self, username: str) -> Person:
        with self.db.transaction() as s:
            return person_of(self._user(s, username))

    def by_id(self, user_id: int) -> Person:
        with self.db.transaction() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound(f"no person with id {user_id}")
            return person_of(user)

    def people(self) -> list[Person]:
        """Everyone, enabled or not, by username."""
        with self.db.transaction() as s:
            return [person_of(u) for u in s.scalars(select(User).order_by(User.username))]

    def disable(self, username: str) -> Person:
        """Stop a person signing in, and sign them out everywhere at once."""
        with self.db.transaction() as s:
            user = self._user(s, username)
            if user.disabled_at is None:
                user.disabled_at = self._clock()
            ended = revoke_sessions(s, user.id, self._clock())
            person = person_of(user)
        log.info("person %s disabled; %d sessions ended", person.username, ended)
        return person

    def enable(self, username: str) -> Person:
        with self.db.transaction() as s:
            user = self._user(s, username)
            user.disabled_at = None
            person = person_of(user)
        log.info("person %s enabled", person.username)
        return person

    def set_roles(self, username: str, roles: Iterable[Role | str]) -> Person:
        """Replace a person's roles (effective on their next request)."""
        granted = parse_roles(roles)
        with self.db.transaction() as s:
            user = self._user(s, username)
            user.roles = sorted(r.value for r in granted)
            person = person_of(user)
        log.info("person %s now has roles %s", person.username, ", ".join(user.roles))
        return person

    def reset_password(self, username: str, password: str) -> Person:
        """Set a new password for a person (an administrator's act): the policy applies,
        and every session of theirs ends."""
        name = normalise_username(username)
        check_password(password, name)
        hashed = self.passwords.hash(password)
        with self.db.transaction() as s:
            user = self._user(s, name)
            self._set_password(s, user, hashed)
            person = person_of(user)
        log.info("password of %s reset; sessions ended", person.username)
        return person

    def change_password(self, user_id: int, current: str, new: str, *, client: str) -> Person:
        """A person changes their own password, proving the current one (limited like a
        sign-in). Every session of theirs ends; the caller starts a fresh one."""
        with self.db.transaction() as s:
            user = s.get(User, user_id)
            if user is None or user.disabled_at is not None:
                raise Unauthenticated("sign in again", code="sign_in_required")
            username, stored = user.username, user.password_hash
        tickets = self._admit(username, client)
        if not self.passwords.verify(stored, current):
            log.info("password change refused for %s: current password wrong", username)
            raise InvalidRequest("wrong_password", "your current password is not right",
                                 field="current_password")
        self._refund(tickets)
        check_password(new, username)
        hashed = self.passwords.hash(new)
        with self.db.transaction() as s:
            user = s.get(User, user_id)
            assert user is not None
            self._set_password(s, user, hashed)
            person = person_of(user)
        log.info("%s changed their password; sessions ended", username)
        return person

    # -- signing in -------------------------------------------------------------------

    def authenticate(self, username: str, password: str, *, client: str) -> Person:
        """The person ``username`` and ``password`` sign in (their second factor, if they
        have one, is still owed: ``verify_code``). ``Unauthenticated`` with
        ``WRONG_CREDENTIALS`` for an unknown username, a disabled person or a wrong
        password alike; ``TooManyAttempts`` past a limit, before any password work."""
        name = normalise_username(username)
        tickets = self._admit(name, client)
        with self.db.transaction() as s:
            user = (s.scalars(select(User).where(User.username == name)).first()
                    if USERNAME.match(name) else None)
        if user is None:
            self.passwords.verify_decoy(password)
            log.info("sign-in refused: unknown username")
            raise Unauthenticated(WRONG_CREDENTIALS, code="wrong_credentials")
        right = self.passwords.verify(user.password_hash, password)
        if not right or user.disabled_at is not None:
            log.info("sign-in refused for %s: %s", user.username,
                     "disabled" if right else "wrong password")
            raise Unauthenticated(WRONG_CREDENTIALS, code="wrong_credentials")
        self._refund(tickets)
        if self.passwords.needs_rehash(user.password_hash):
            self._rehash(user.id, user.password_hash, password)
        log.info("%s gave the right password%s", user.username,
                 "; TOTP code owed" if user.totp_secret else "")
        return person_of(user)

    def verify_code(self, user_id: int, code: str, *, client: str) -> Person:
        """The second sign-in step: ``code`` from the person's authenticator, accepted
        once. ``Unauthenticated`` (``wrong_code`` / ``code_used``) otherwise."""
        with self.db.transaction() as s:
            user = s.get(User, user_id)
            if user is None or user.disabled_at is not None or user.totp_secret is None:
                raise Unauthenticated("sign in again", code="sign_in_required")
            username, sealed = user.username, user.totp_secret
        tickets = self._admit(username, client)
        secret = self.secrets.open(sealed)
        self._accept_code(user_id, username, secret, code)
        self._refund(tickets)
        log.info("%s gave the TOTP code", username)
        return self.by_id(user_id)

    # -- the second factor ------------------------------------------------------------

    def offer_totp(self, user_id: int) -> TotpOffer:
        """A new secret for a person to add to their authenticator (nothing is stored
        until ``confirm_totp``)."""
        person = self.by_id(user_id)
        secret = totp.new_secret()
        return TotpOffer(secret, totp.provisioning_uri(secret, person.username),
                         self.secrets.seal(f"{person.id}:{secret}"))

    def offer_from(self, user_id: int, sealed: str) -> TotpOffer:
        """The offer ``sealed`` carries, to show again (a wrong code was typed);
        ``InvalidRequest`` once it has expired or when it was made for someone else."""
        person = self.by_id(user_id)
        try:
            owner, secret = self.secrets.open(sealed, ttl_s=TOTP_OFFER_TTL_S).split(":", 1)
        except ValueError:
            owner, secret = "", ""
        if owner != str(person.id):
            raise InvalidRequest("offer_expired", "that set-up has expired: start again",
                                 field="code")
        return TotpOffer(secret, totp.provisioning_uri(secret, person.username), sealed)

    def confirm_totp(self, user_id: int, sealed: str, code: str, *, client: str) -> Person:
        """Turn on the offered second factor once the person shows a code from it."""
        secret = self.offer_from(user_id, sealed).secret
        person = self.by_id(user_id)
        tickets = self._admit(person.username, client)
        try:
            self._accept_code(user_id, person.username, secret, code)
        except Unauthenticated as exc:
            raise InvalidRequest(exc.code, str(exc), field="code") from None
        self._refund(tickets)
        self._store_totp(person.username, secret)
        log.info("%s turned on TOTP", person.username)
        return self.by_id(user_id)

    def turn_on_totp(self, username: str) -> str:
        """Give a person a new second factor at once (an administrator's act); returns
        the provisioning URI, to hand over once. It replaces any earlier secret."""
        person = self.get(username)
        secret = totp.new_secret()
        self._store_totp(person.username, secret)
        log.info("TOTP set for %s by an administrator", person.username)
        return totp.provisioning_uri(secret, person.username)

    def turn_off_totp(self, username: str) -> Person:
        """Remove a person's second factor (a lost phone): their sessions end too."""
        with self.db.transaction() as s:
            user = self._user(s, username)
            user.totp_secret = None
            revoke_sessions(s, user.id, self._clock())
            person = person_of(user)
        log.info("TOTP removed for %s; sessions ended", person.username)
        return person

    # -- inside -----------------------------------------------------------------------

    def _user(self, s: Session, username: str) -> User:
        name = normalise_username(username)
        user = s.scalars(select(User).where(User.username == name)).first()
        if user is None:
            raise NotFound(f"no person with username {name!r}", code="no_such_person")
        return user

    def _set_password(self, s: Session, user: User, hashed: str) -> None:
        now = self._clock()
        user.password_hash = hashed
        user.password_changed_at = now
        revoke_sessions(s, user.id, now)

    def _rehash(self, user_id: int, old_hash: str, password: str) -> None:
        """Store the password under the current parameters, unless it changed meanwhile."""
        hashed = self.passwords.hash(password)
        with self.db.transaction() as s:
            user = s.get(User, user_id)
            if user is not None and user.password_hash == old_hash:
                user.password_hash = hashed

    def _store_totp(self, username: str, secret: str) -> None:
        sealed = self.secrets.seal(secret)
        with self.db.transaction() as s:
            self._user(s, username).totp_secret = sealed

    def _accept_code(self, user_id: int, username: str, secret: str, code: str) -> None:
        step = totp.matching_step(secret, code, self._clock())
        if step is None:
            log.info("TOTP code refused for %s: wrong", username)
            raise Unauthenticated("that code is not right: type the 6 digits your "
                                  "authenticator app shows now", code="wrong_code")
        if not self.limits.first_use("totp_code", f"user:{user_id}", step * totp.STEP_S):
            log.info("TOTP code refused for %s: already used", username)
            raise Unauthenticated("that code was already used: wait for the next one",
                                  code="code_used")

    def _admit(self, username: str, client: str) -> list[Ticket]:
        """Reserve one failure under each limit (given back on success)."""
        account = self.limits.take(self.account_limit, f"person:{username}")
        try:
            return [account, self.limits.take(self.client_limit, client)]
        except TooManyAttempts:
            self.limits.refund(account)
            raise

    def _refund(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            self.limits.refund(ticket)


def _taken(username: str) -> Conflict:
    return Conflict(f"the username {username!r} is taken", code="username_taken")
