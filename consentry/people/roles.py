"""Roles people hold in the console, and what each role may do. Pure.

- ``moderator``: works the review queues and decides items.
- ``child_safety``: as a moderator, and the only role (with ``admin``) that may see
  restricted items: suspected child sexual abuse (CS-1, KM-1) and what goes to NCMEC.
- ``lead``: decides items and sees the lead dashboards (queues, SLA, who works what).
- ``compliance``: read-only: reports and history; never decides an item.
- ``admin``: everything, including people and roles.

A person may hold several roles; a permission is granted when any role grants it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from consentry.errors import InvalidRequest


class Role(StrEnum):
    ADMIN = "admin"
    LEAD = "lead"
    MODERATOR = "moderator"
    CHILD_SAFETY = "child_safety"
    COMPLIANCE = "compliance"


# Who may do what, written out so a reader finds each rule in one place.
SEE_RESTRICTED: Final = frozenset({Role.CHILD_SAFETY, Role.ADMIN})
DECIDE: Final = frozenset({Role.ADMIN, Role.LEAD, Role.MODERATOR, Role.CHILD_SAFETY})
LEAD_DASHBOARDS: Final = frozenset({Role.LEAD, Role.ADMIN})
READ_REPORTS: Final = frozenset({Role.COMPLIANCE, Role.LEAD, Role.ADMIN})
MANAGE_PEOPLE: Final = frozenset({Role.ADMIN})


def may_see_restricted(roles: Iterable[Role]) -> bool:
    """Whether restricted child-safety items (CS-1, KM-1) may be shown to this person."""
    return not SEE_RESTRICTED.isdisjoint(roles)


def may_decide(roles: Iterable[Role]) -> bool:
    """Whether this person may decide review items (compliance may not: read-only)."""
    return not DECIDE.isdisjoint(roles)


def may_see_lead_dashboards(roles: Iterable[Role]) -> bool:
    return not LEAD_DASHBOARDS.isdisjoint(roles)


def may_read_reports(roles: Iterable[Role]) -> bool:
    """Reports and history: compliance's work, and leads' and admins'."""
    return not READ_REPORTS.isdisjoint(roles)


def may_manage_people(roles: Iterable[Role]) -> bool:
    return not MANAGE_PEOPLE.isdisjoint(roles)


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Roles as typed (``"moderator"``, ``" Lead "``); at least one, each known."""
    roles: set[Role] = set()
    for value in values:
        name = value.strip().lower()
        try:
            roles.add(Role(name))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidRequest("unknown_role", f"no role {value!r}; roles are: {known}",
                                 field="roles") from None
    if not roles:
        raise InvalidRequest("no_role", "give at least one role", field="roles")
    return frozenset(roles)
