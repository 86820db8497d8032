"""The transparency report's figures over checks, counted on the analytics engine (chdb)
after an export, equal the database's on the same history, and a repeated or overlapping
export counts nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from report_history import END, START, build_history

from consentry.reporting.analytics import Window, export_checks
from consentry.reporting.transparency import Period, transparency_report
from consentry.store.clickhouse import ClickHouse, connect_clickhouse

pytest.importorskip("chdb")


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    handle = connect_clickhouse(f"chdb://{tmp_path_factory.mktemp('chdb')}",
                                f"t_{uuid.uuid4().hex[:12]}")
    yield handle
    handle.command(f"DROP DATABASE IF EXISTS {handle.database}")
    handle.close()


def test_the_figures_over_checks_equal_the_databases(db, engine):
    history = build_history(db, checks=400)
    assert export_checks(db, engine) == len(history.checks)
    # again, and an overlapping window: every check is still counted once
    assert export_checks(db, engine) == len(history.checks)
    export_checks(db, engine, Window(START - timedelta(hours=1), START + timedelta(hours=5)))
    for period in (Period(START, END), Period(START + timedelta(hours=3), END),
                   Period(START - timedelta(days=2), END + timedelta(days=2))):
        expected = transparency_report(db, period)
        found = transparency_report(db, period, analytics=engine)
        assert found.surfaces == expected.surfaces
        assert sorted(found.refusals, key=repr) == sorted(expected.refusals, key=repr)
        assert sorted(found.matches, key=repr) == sorted(expected.matches, key=repr)
        rest = {"generated_at", "surfaces", "refusals", "matches", "checks_counted_on"}
        assert found.model_dump(exclude=rest) \
            == expected.model_dump(exclude=rest)
    report = transparency_report(db, Period(START, END), analytics=engine)
    assert sum(s.attempts for s in report.surfaces) == sum(
        1 for c in history.checks if history.inside(c["at"]))
    assert report.matches and any(r.language != "none" for r in report.refusals)


def test_the_scheduled_export_sends_what_is_new_and_what_committed_late(db, engine):
    from sqlalchemy import select

    from consentry.reporting.analytics import CHECKS_TABLE, export_recent
    from consentry.store.models import CheckRecord

    history = build_history(db, checks=120)
    now = END + timedelta(hours=1)
    assert export_recent(db, engine, now) == len(history.checks)  # the first run: all
    with db.transaction() as s:
        latest = max(s.scalars(select(CheckRecord.created_at)))
        template = s.scalars(select(CheckRecord).limit(1)).one()
        for name, at in (("late", latest - timedelta(minutes=3)),  # a slow commit
                         ("new", latest + timedelta(minutes=1))):
            s.add(CheckRecord(id=f"chk_{name}", kind="generation", account_id=None,
                              created_at=at, decision="allow", category="none",
                              clause="OK-1", policy_version=template.policy_version,
                              image_sha256=[], verdict={"reasons": []}, latency_ms=1.0))
    sent = export_recent(db, engine, now)
    assert 2 <= sent < len(history.checks)  # the new, the late, and the overlap only
    [(count,)] = engine.rows(f"SELECT count() FROM {engine.database}.{CHECKS_TABLE} FINAL")
    assert count == len(history.checks) + 2


def _later_check(db, at) -> None:
    from consentry.store.models import CheckRecord

    with db.transaction() as s:
        s.add(CheckRecord(id=f"chk_later_{at.timestamp():.0f}", kind="generation",
                          account_id=None, created_at=at, decision="allow", category="none",
                          clause="OK-1", policy_version="1", image_sha256=[],
                          verdict={"reasons": []}, latency_ms=1.0))


def test_the_configured_report_counts_on_the_engine_only_once_its_export_covers_it(
        db, engine, tmp_path):
    from sqlalchemy import func, select

    from consentry.config import Settings
    from consentry.reporting.transparency import transparency_report_for
    from consentry.store.models import CheckRecord

    build_history(db, checks=120)
    with db.transaction() as s:
        latest = s.scalar(select(func.max(CheckRecord.created_at)))
    period = Period(START, latest - timedelta(minutes=5))
    settings = Settings(data_dir=tmp_path, clickhouse_url=f"chdb://{engine.path}",
                        clickhouse_database=engine.database)
    assert transparency_report_for(db, period, Settings(data_dir=tmp_path)
                                   ).checks_counted_on == "database"  # none configured
    # Exported, but the newest check is only 5 minutes past the period: a check of the
    # period committing late could still be missing from the engine.
    export_checks(db, engine)
    assert transparency_report_for(db, period, settings).checks_counted_on == "database"
    _later_check(db, latest + timedelta(minutes=6))
    export_checks(db, engine)
    found = transparency_report_for(db, period, settings)
    expected = transparency_report(db, period)
    assert found.checks_counted_on == "analytics"
    assert found.surfaces == expected.surfaces and sum(s.attempts for s in found.surfaces)
    assert sorted(found.refusals, key=repr) == sorted(expected.refusals, key=repr)
    # A period reaching past the latest export is counted on the database, which has all.
    beyond = transparency_report_for(db, Period(START, latest + timedelta(days=1)), settings)
    assert beyond.checks_counted_on == "database"
