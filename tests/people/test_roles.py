"""What each role may do in the console."""

from __future__ import annotations

import pytest

from consentry.errors import InvalidRequest
from consentry.people.roles import (
    Role,
    may_decide,
    may_manage_people,
    may_read_reports,
    may_see_lead_dashboards,
    may_see_restricted,
    parse_roles,
)

A, L, M, C, P = Role.ADMIN, Role.LEAD, Role.MODERATOR, Role.CHILD_SAFETY, Role.COMPLIANCE


@pytest.mark.parametrize(("role", "restricted", "decide", "dashboards", "reports", "people"), [
    (A, True, True, True, True, True),
    (L, False, True, True, True, False),
    (M, False, True, False, False, False),
    (C, True, True, False, False, False),
    (P, False, False, False, True, False),
])
def test_each_role_may_do_exactly_this(role, restricted, decide, dashboards, reports, people):
    roles = {role}
    assert may_see_restricted(roles) is restricted
    assert may_decide(roles) is decide
    assert may_see_lead_dashboards(roles) is dashboards
    assert may_read_reports(roles) is reports
    assert may_manage_people(roles) is people


def test_roles_add_up_and_no_role_grants_nothing():
    assert may_see_restricted({M, C}) and may_decide({P, M})
    assert not any(f(set()) for f in (may_see_restricted, may_decide, may_see_lead_dashboards,
                                      may_read_reports, may_manage_people))


def test_roles_are_parsed_as_typed():
    assert parse_roles([" Lead ", "moderator", "lead"]) == {L, M}
    with pytest.raises(InvalidRequest, match="no role 'boss'; roles are: admin, lead"):
        parse_roles(["boss"])
    with pytest.raises(InvalidRequest, match="at least one role"):
        parse_roles([])
