"""A person as the console sees them: who they are and what they may do, never their
password hash or TOTP secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consentry.people.roles import Role
from consentry.store.models import User

_KNOWN_ROLES = frozenset(r.value for r in Role)


@dataclass(frozen=True)
class Person:
    id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    has_totp: bool
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "roles": sorted(r.value for r in self.roles), "totp": self.has_totp,
                "enabled": self.enabled, "created_at": self.created_at.isoformat(),
                "password_changed_at": self.password_changed_at.isoformat(),
                "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None}


def person_of(user: User) -> Person:
    """The stored user as a ``Person``; a role name this version does not know (written
    by a newer one) grants nothing rather than failing."""
    roles = frozenset(Role(r) for r in user.roles if r in _KNOWN_ROLES)
    return Person(id=user.id, username=user.username, display_name=user.display_name,
                  roles=roles, has_totp=user.totp_secret is not None,
                  created_at=user.created_at, password_changed_at=user.password_changed_at,
                  disabled_at=user.disabled_at)
