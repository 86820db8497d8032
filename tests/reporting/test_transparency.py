"""The transparency report's figures equal counts over a generated history, computed here
in plain Python from what the history wrote; its documents carry no personal data."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from report_history import END, START, History, build_history

from consentry.errors import InvalidRequest
from consentry.reporting.documents import (
    transparency_csv,
    transparency_html,
    transparency_json,
    write_transparency,
)
from consentry.reporting.transparency import Period, transparency_report


def nearest_rank(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


@pytest.fixture
def history(db) -> History:
    return build_history(db)


def test_every_figure_equals_a_count_over_the_history(db, history):
    report = transparency_report(db, Period(START, END))
    inside = History.inside
    checks = [c for c in history.checks if inside(c["at"])]

    surfaces = {s.surface: (s.attempts, s.refused, s.held_for_review) for s in report.surfaces}
    for kind in ("generation", "upload", "output"):
        mine = [c for c in checks if c["kind"] == kind]
        assert surfaces[kind] == (len(mine), sum(c["decision"] == "block" for c in mine),
                                  sum(c["decision"] == "review" for c in mine))

    refused = Counter((c["kind"], c["clause"], c["language"]) for c in checks
                      if c["decision"] == "block")
    assert {(r.surface, r.clause, r.language): r.refused for r in report.refusals} == refused
    assert any(r.language == "none" for r in report.refusals)
    assert any(r.language == "es" for r in report.refusals)

    matched = Counter(c["matched"] for c in checks if c["matched"] and c["kind"] == "upload")
    assert {(m.bank, m.source): m.uploads for m in report.matches} == matched
    assert sum(matched.values()) > 5

    cases = [c for c in history.cases if inside(c["received"]) and c["merged"] is None]
    by_regime = {t.regime: t for t in report.takedowns}
    for regime in [*{c["regime"] for c in cases}, "all"]:
        mine = [c for c in cases if regime in ("all", c["regime"])]
        times = [c["removal"].total_seconds() for c in mine if c["removal"] is not None]
        fast = sum(t <= 48 * 3600 for t in times)
        figures = by_regime[regime]
        assert (figures.requests, figures.removed, figures.removed_within_48h) == (
            len(mine), len(times), fast)
        assert figures.median_time_to_removal_s == nearest_rank(times, 0.5)
        assert figures.p95_time_to_removal_s == nearest_rank(times, 0.95)
        assert figures.share_within_48h == (round(fast / len(times), 4) if times else None)
    assert any(c["removal"] is not None and c["removal"].total_seconds() == 48 * 3600
               for c in cases)  # the edge of the deadline counts as within it

    reviews = [r for r in history.reviews if inside(r["created"])]
    for figures in report.reviews:
        mine = [r for r in reviews if r["queue"] == figures.queue]
        times = [r["handling"].total_seconds() for r in mine if r["handling"]]
        assert (figures.created, figures.decided) == (len(mine), len(times))
        assert figures.median_time_to_decision_s == nearest_rank(times, 0.5)
        assert figures.p95_time_to_decision_s == nearest_rank(times, 0.95)
    assert sum(f.created for f in report.reviews) == len(reviews)

    appeals = [a for a in history.appeals if inside(a["filed"])]
    expected_appeals = {}
    for clause in {a["clause"] for a in appeals}:
        mine = [a for a in appeals if a["clause"] == clause]
        decided = sum(a["decided"] for a in mine)
        overturned = sum(a["overturned"] for a in mine)
        expected_appeals[clause] = (len(mine), decided, overturned,
                                    round(overturned / decided, 4) if decided else None)
    assert {a.clause: (a.filed, a.decided, a.overturned, a.overturn_rate)
            for a in report.appeals} == expected_appeals

    strikes = [x for x in history.strikes if inside(x["at"])]
    suspensions = [x for x in history.suspensions if inside(x["at"])]
    assert report.accounts_struck == len({x["account"] for x in strikes})
    assert report.accounts_suspended == len({x["account"] for x in suspensions})
    for e in report.enforcement:
        mine = [x for x in strikes if x["clause"] == e.clause]
        held = [x for x in suspensions if x["clause"] == e.clause]
        assert (e.strikes, e.accounts_struck) == (len(mine), len({x["account"] for x in mine}))
        assert (e.suspensions, e.accounts_suspended, e.permanent_suspensions) == (
            len(held), len({x["account"] for x in held}), sum(x["permanent"] for x in held))
    assert sum(e.strikes for e in report.enforcement) == len(strikes)

    assert report.ncmec_reports_sent == sum(
        x["status"] == "sent" and inside(x["at"]) for x in history.cybertips)
    assert report.statements_of_reasons_sent == sum(
        x["status"] == "sent" and inside(x["at"]) for x in history.statements)


def test_the_documents_agree_with_the_figures_and_hold_no_personal_data(db, history,
                                                                         tmp_path):
    report = transparency_report(db, Period(START, END))
    written = write_transparency(report, tmp_path / "out")
    assert sorted(p.name for p in written) == ["transparency.csv", "transparency.html",
                                               "transparency.json"]
    assert json.loads(transparency_json(report))["ncmec_reports_sent"] == \
        report.ncmec_reports_sent
    rows = list(csv.DictReader(io.StringIO(transparency_csv(report))))
    refused = sum(int(r["value"]) for r in rows
                  if r["section"] == "refusals" and r["measure"] == "refused")
    assert refused == sum(r.refused for r in report.refusals)
    html = transparency_html(report)
    assert "<svg" in html and "<script" not in html
    for path in written:
        text = path.read_text()
        leaked = [p for p in history.personal if p in text]
        assert not leaked, f"{path.name} holds {leaked}"
    assert not list((tmp_path / "out").glob(".*partial"))


def test_periods_are_read_as_utc_and_must_end_after_they_start():
    period = Period.parse("2026-11-02", "2026-11-04T00:00:00+00:00")
    assert (period.start, period.end) == (datetime(2026, 11, 2, tzinfo=UTC),
                                          datetime(2026, 11, 4, tzinfo=UTC))
    assert len(period.hours()) == 48
    with pytest.raises(InvalidRequest):
        Period.parse("2026-11-04", "2026-11-02")
    with pytest.raises(InvalidRequest):
        Period.parse("yesterday", "2026-11-02")
