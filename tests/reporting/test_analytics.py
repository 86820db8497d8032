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
def engine(clickhouse_url: str) -> Iterator[ClickHouse]:
    handle = connect_clickhouse(clickhouse_url, f"t_{uuid.uuid4().hex[:12]}")
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


def test_the_configured_report_counts_on_the_engine_what_its_export_covers_and_the_rest_on_the_database(  # noqa: E501
        db, engine, tmp_path, monkeypatch):
    from sqlalchemy import func, select

    from consentry.config import Settings
    from consentry.reporting import analytics
    from consentry.reporting.analytics import EXPORT_OVERLAP
    from consentry.reporting.documents import transparency_html
    from consentry.reporting.transparency import transparency_report_for
    from consentry.store.models import CheckRecord

    build_history(db, checks=120)
    with db.transaction() as s:
        latest = s.scalar(select(func.max(CheckRecord.created_at)))
    _later_check(db, latest - timedelta(minutes=7))  # in the minutes the export may lack
    period = Period(START, latest - timedelta(minutes=5))
    settings = Settings(data_dir=tmp_path, clickhouse_url=engine.url,
                        clickhouse_database=engine.database)
    assert transparency_report_for(db, period, Settings(data_dir=tmp_path)
                                   ).checks_counted_on == "database"  # none configured
    assert transparency_report_for(db, period, settings
                                   ).checks_counted_on == "database"  # nothing exported

    asked: list[Window] = []
    counts = analytics.surface_counts
    monkeypatch.setattr(analytics, "surface_counts",
                        lambda e, w: asked.append(w) or counts(e, w))

    def same_as_the_database(found, period) -> None:
        expected = transparency_report(db, period)
        assert found.surfaces == expected.surfaces and sum(s.attempts for s in found.surfaces)
        assert sorted(found.refusals, key=repr) == sorted(expected.refusals, key=repr)
        assert sorted(found.matches, key=repr) == sorted(expected.matches, key=repr)

    # Exported, but the newest check is only 5 minutes past the period: a check of its
    # last minutes committing late could still be missing from the engine, so those
    # minutes (from the newest exported check less the allowance) are counted on the
    # database and the rest on the engine.
    export_checks(db, engine)
    cut = latest - EXPORT_OVERLAP
    found = transparency_report_for(db, period, settings)
    assert (found.checks_counted_on, found.checks_on_database_from) == (
        "analytics+database", cut)
    assert asked == [Window(START, cut)]
    same_as_the_database(found, period)
    assert (f"counted on the analytics engine up to {cut:%Y-%m-%d %H:%M:%S} UTC and on the "
            "database from then on") in transparency_html(found)

    # A period reaching up to now (the current month): what was recorded since the
    # export is counted too, on the database.
    _later_check(db, latest + timedelta(minutes=1))
    now = Period(START, latest + timedelta(days=1))
    current = transparency_report_for(db, now, settings)
    assert current.checks_counted_on == "analytics+database"
    same_as_the_database(current, now)
    assert sum(s.attempts for s in current.surfaces) == sum(
        s.attempts for s in transparency_report(db, now).surfaces)

    # Once the export covers the whole period, all of it is counted on the engine; a
    # period that starts after what it covers, all on the database.
    _later_check(db, latest + timedelta(minutes=6))
    export_checks(db, engine)
    covered = transparency_report_for(db, period, settings)
    assert (covered.checks_counted_on, covered.checks_on_database_from) == ("analytics", None)
    same_as_the_database(covered, period)
    after = Period(latest, latest + timedelta(days=1))
    assert transparency_report_for(db, after, settings).checks_counted_on == "database"
