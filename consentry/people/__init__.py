"""People who sign in to the console (moderators, leads, child-safety reviewers,
compliance, administrators): roles, passwords, the optional TOTP second factor, the
directory of people and sign-in, and server-side sessions. Services' credentials (API
keys) are in ``consentry.access``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from consentry.config import Settings
from consentry.people.directory import Directory
from consentry.people.passwords import Passwords
from consentry.people.person import Person
from consentry.people.roles import Role
from consentry.people.sessions import LiveSession, Sessions
from consentry.people.totp import SecretBox
from consentry.secret_key import service_secret_key
from consentry.store import Database

__all__ = ["Directory", "LiveSession", "People", "Person", "Role", "Sessions"]


@dataclass(frozen=True)
class People:
    """The directory and the sessions over one database, as an edge holds them."""

    directory: Directory
    sessions: Sessions

    @classmethod
    def open(cls, db: Database, settings: Settings, *, passwords: Passwords | None = None,
             clock: Callable[[], datetime] | None = None) -> People:
        """Over ``db``, with the service's secret key from ``settings`` (read when TOTP
        first needs it)."""
        box = SecretBox(lambda: service_secret_key(settings))
        return cls(Directory(db, secrets=box, passwords=passwords, clock=clock),
                   Sessions(db, clock=clock))
