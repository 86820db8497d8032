"""Retention on SQLite and PostgreSQL: allowed checks past their days are deleted (with
their expired conversation turns), refused and held ones are kept as evidence, and the
audit chain still verifies without the deleted rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from consentry.audit.verify import verify
from consentry.store.models import CheckRecord, ThreadTurn
from consentry.store.retention import purge_allowed_checks


def test_old_allowed_checks_go_refusals_stay_and_the_chain_verifies(gate, clock, photos):
    old_allowed = gate.check_generation("a teapot on a windowsill", account="r1",
                                        thread="t-r")
    old_refused = gate.check_generation("put her in a bikini", [photos["astronaut"]], "r2")
    clock.advance(days=40)
    new_allowed = gate.check_generation("a kite over the dunes", account="r1")
    assert purge_allowed_checks(gate.db, before=clock() - timedelta(days=30)) == 1
    with gate.db.transaction() as s:
        kept = set(s.scalars(select(CheckRecord.id)))
        turns = list(s.scalars(select(ThreadTurn.check_id)))
    assert kept == {old_refused.id, new_allowed.id} and old_allowed.id not in turns
    assert verify(gate.db).ok
    assert purge_allowed_checks(gate.db, before=clock() - timedelta(days=30)) == 0
