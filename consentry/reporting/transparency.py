"""The transparency report: what the service refused, matched, took down, reviewed and
reported over a period, each figure a count over the events that produced it.

Every figure is aggregated by the database (``GROUP BY``, ``COUNT``, an ``ORDER BY ...
OFFSET`` for a percentile), never by loading the events, so a period of millions of
events costs a handful of queries. Periods are half-open: ``start <= at < end``, UTC.
How each figure is counted is written beside it and in docs/transparency.md."""

from __future__ import annotations

import logging
import math
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import Select, and_, case, distinct, func, literal, select
from sqlalchemy.orm import Session

from consentry.cases.case import REMOVAL_DEADLINE, EventKind
from consentry.config import Settings
from consentry.errors import InvalidRequest
from consentry.store import Database
from consentry.store.clickhouse import ClickHouse, configured_clickhouse
from consentry.store.dialect import seconds_between
from consentry.store.models import (
    Appeal,
    BankEntry,
    CaseEvent,
    CheckRecord,
    CyberTipReport,
    DsaStatement,
    ReviewItem,
    Strike,
    Suspension,
    TakedownCase,
)

log = logging.getLogger(__name__)

SURFACES: Final = ("generation", "upload", "output")
NO_LANGUAGE: Final = "none"  # a refusal that rests on no matched words (an image, a hash)
# Floating-point durations (SQLite's julianday) may miss a whole second by microseconds.
_EPSILON_S: Final = 0.001
_SPANS_LOOKED_AT: Final = 4  # the language is that of the first of these reasons with a span


@dataclass(frozen=True)
class Period:
    """``start <= at < end``, both aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period's bounds are aware UTC times")
        if self.end <= self.start:
            raise InvalidRequest("bad_period", "the period must end after it starts",
                                 field="to")

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        """From ``YYYY-MM-DD`` (midnight UTC) or ISO 8601 times; ``end`` is exclusive."""
        return cls(_parse_time(start, "from"), _parse_time(end, "to"))

    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()} (end exclusive)"

    def hours(self) -> list[str]:
        """Every hour the period touches, as ``YYYY-MM-DD HH:00``."""
        at = self.start.replace(minute=0, second=0, microsecond=0)
        out = []
        while at < self.end:
            out.append(at.strftime("%Y-%m-%d %H:00"))
            at += timedelta(hours=1)
        return out


def _parse_time(text: str, field: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest("bad_time", f"{text!r} is not a date (YYYY-MM-DD) or an ISO "
                             "8601 time", field=field) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- the figures ---------------------------------------------------------------------------


class SurfaceFigures(BaseModel):
    surface: str
    attempts: int
    refused: int
    held_for_review: int


class RefusalFigures(BaseModel):
    surface: str
    clause: str
    language: str
    refused: int


class MatchFigures(BaseModel):
    bank: str
    source: str
    uploads: int


class TakedownFigures(BaseModel):
    regime: str  # "all" for every regime together
    requests: int
    removed: int
    removed_within_48h: int
    share_within_48h: float | None  # of those removed
    median_time_to_removal_s: float | None
    p95_time_to_removal_s: float | None


class ReviewFigures(BaseModel):
    queue: str
    created: int
    decided: int
    median_time_to_decision_s: float | None
    p95_time_to_decision_s: float | None


class AppealFigures(BaseModel):
    clause: str
    filed: int
    decided: int
    overturned: int
    overturn_rate: float | None  # overturned / decided


class EnforcementFigures(BaseModel):
    clause: str
    strikes: int
    accounts_struck: int
    suspensions: int
    accounts_suspended: int
    permanent_suspensions: int


class TransparencyReport(BaseModel):
    """The figures for one period (see the module's docstring for how each is counted)."""

    period_start: datetime
    period_end: datetime
    generated_at: datetime
    surfaces: list[SurfaceFigures]
    refusals: list[RefusalFigures]
    matches: list[MatchFigures]
    takedowns: list[TakedownFigures]
    reviews: list[ReviewFigures]
    appeals: list[AppealFigures]
    enforcement: list[EnforcementFigures]
    accounts_struck: int
    accounts_suspended: int
    ncmec_reports_sent: int
    statements_of_reasons_sent: int
    # Where the figures over checks were counted: "database"; "analytics" (the engine
    # export_checks fills, once its export covers the period); or "analytics+database":
    # the engine up to ``checks_on_database_from``, the database from then on (the
    # minutes the export has not yet covered, e.g. in a report of the current month).
    checks_counted_on: str = "database"
    checks_on_database_from: datetime | None = None


def transparency_report_for(db: Database, period: Period, settings: Settings, *,
                            now: datetime | None = None) -> TransparencyReport:
    """The report as configured: with an analytics engine (``CONSENTRY_CLICKHOUSE_URL``),
    the figures over checks are counted there for the part of the period its export
    covers and on the database for the rest (the database always has every check); with
    none configured, or an engine that cannot be read, all on the database."""
    from consentry.reporting.analytics import covered_until

    if not settings.clickhouse_url:
        return transparency_report(db, period, now=now)
    with ExitStack() as stack:
        try:
            engine = stack.enter_context(configured_clickhouse(settings))
            until = covered_until(engine)
        except Exception as exc:  # noqa: BLE001 - the database can still answer
            log.warning("the analytics engine cannot be read (%s); counting on the database",
                        type(exc).__name__)
            until = None
        if until is not None and until > period.start:
            return transparency_report(db, period, now=now, analytics=engine,
                                       analytics_until=until)
    return transparency_report(db, period, now=now)


def transparency_report(db: Database, period: Period, *, now: datetime | None = None,
                        analytics: ClickHouse | None = None,
                        analytics_until: datetime | None = None) -> TransparencyReport:
    """Compute every figure for ``period`` in one read transaction. With ``analytics``
    (the engine ``consentry.reporting.analytics.export_checks`` fills), the figures over
    checks are counted there (before ``analytics_until`` only, if given: the database
    counts those from then on) and the rest by the database."""
    with db.transaction() as s:
        if analytics is None:
            counted_on, database_from = "database", None
            figures = _check_figures(s, period)
        elif analytics_until is not None and period.start < analytics_until < period.end:
            counted_on, database_from = "analytics+database", analytics_until
            figures = _added(_check_figures_from(analytics, Period(period.start,
                                                                   analytics_until)),
                             _check_figures(s, Period(analytics_until, period.end)))
        else:
            counted_on, database_from = "analytics", None
            figures = _check_figures_from(analytics, period)
        surfaces, refusals, matches = figures
        return TransparencyReport(
            period_start=period.start, period_end=period.end,
            generated_at=now or datetime.now(UTC),
            surfaces=surfaces, refusals=refusals,
            matches=matches, takedowns=takedown_figures(s, period),
            reviews=_reviews(s, period), appeals=_appeals(s, period),
            enforcement=_enforcement(s, period),
            accounts_struck=_distinct_accounts(s, Strike.account_id, Strike.created_at,
                                               period),
            accounts_suspended=_distinct_accounts(s, Suspension.account_id,
                                                  Suspension.starts_at, period),
            ncmec_reports_sent=s.scalar(select(func.count()).select_from(CyberTipReport).where(
                CyberTipReport.status == "sent", *_within(CyberTipReport.updated_at, period)))
            or 0,
            statements_of_reasons_sent=s.scalar(
                select(func.count()).select_from(DsaStatement).where(
                    DsaStatement.status == "sent", *_within(DsaStatement.sent_at, period)))
            or 0,
            checks_counted_on=counted_on, checks_on_database_from=database_from)


CheckFigures = tuple[list["SurfaceFigures"], list["RefusalFigures"], list["MatchFigures"]]


def _check_figures(s: Session, period: Period) -> CheckFigures:
    return _surfaces(s, period), _refusals(s, period), _matches(s, period)


def _added(first: CheckFigures, second: CheckFigures) -> CheckFigures:
    """The figures of two adjoining periods as one: every figure over checks is a count,
    so the counts of each group are added."""
    surfaces: dict[str, tuple[int, int, int]] = {}
    for f in (*first[0], *second[0]):
        a, r, h = surfaces.get(f.surface, (0, 0, 0))
        surfaces[f.surface] = (a + f.attempts, r + f.refused, h + f.held_for_review)
    refusals: Counter[tuple[str, str, str]] = Counter()
    for g in (*first[1], *second[1]):
        refusals[(g.surface, g.clause, g.language)] += g.refused
    matches: Counter[tuple[str, str]] = Counter()
    for m in (*first[2], *second[2]):
        matches[(m.bank, m.source)] += m.uploads
    return (_surface_figures(surfaces),
            [RefusalFigures(surface=k, clause=c, language=lang, refused=n)
             for (k, c, lang), n in sorted(refusals.items())],
            [MatchFigures(bank=b, source=src, uploads=n)
             for (b, src), n in sorted(matches.items())])


def _within(column: Any, period: Period) -> tuple[Any, Any]:
    return column >= period.start, column < period.end


def check_language() -> Any:
    """The language of a check's first reason that quotes words of the prompt (its
    lexicon), or ``none``: uploads, outputs and refusals on images alone have none."""
    paths = [CheckRecord.verdict[("reasons", i, "span", "language")].as_string()
             for i in range(_SPANS_LOOKED_AT)]
    return func.coalesce(*paths, literal(NO_LANGUAGE))


def first_reason(field: str) -> Any:
    """A field of a check's first reason (for a hash match: its most severe match)."""
    return CheckRecord.verdict[("reasons", 0, field)]


def is_match() -> Any:
    return first_reason("code").as_string() == "hash_match"


def _check_figures_from(engine: ClickHouse, period: Period) -> CheckFigures:
    from consentry.reporting import analytics

    window = analytics.Window(period.start, period.end)
    return (_surface_figures(analytics.surface_counts(engine, window)),
            [RefusalFigures(surface=k, clause=c, language=lang, refused=n)
             for k, c, lang, n in analytics.refusal_counts(engine, window)],
            [MatchFigures(bank=b, source=src, uploads=n)
             for b, src, n in analytics.match_counts(engine, window)])


def _surfaces(s: Session, period: Period) -> list[SurfaceFigures]:
    rows = s.execute(select(
        CheckRecord.kind, func.count(),
        func.sum(case((CheckRecord.decision == "block", 1), else_=0)),
        func.sum(case((CheckRecord.decision == "review", 1), else_=0)))
        .where(*_within(CheckRecord.created_at, period)).group_by(CheckRecord.kind)).all()
    return _surface_figures({kind: (int(n), int(b or 0), int(r or 0)) for kind, n, b, r in rows})


def _surface_figures(found: dict[str, tuple[int, int, int]]) -> list[SurfaceFigures]:
    return [SurfaceFigures(surface=k, attempts=found.get(k, (0, 0, 0))[0],
                           refused=found.get(k, (0, 0, 0))[1],
                           held_for_review=found.get(k, (0, 0, 0))[2])
            for k in (*SURFACES, *sorted(set(found) - set(SURFACES)))]


def _refusals(s: Session, period: Period) -> list[RefusalFigures]:
    language = check_language().label("language")
    rows = s.execute(select(CheckRecord.kind, CheckRecord.clause, language, func.count())
                     .where(CheckRecord.decision == "block",
                            *_within(CheckRecord.created_at, period))
                     .group_by(CheckRecord.kind, CheckRecord.clause, language)
                     .order_by(CheckRecord.kind, CheckRecord.clause, language)).all()
    return [RefusalFigures(surface=k, clause=c, language=lang, refused=int(n))
            for k, c, lang, n in rows]


def _matches(s: Session, period: Period) -> list[MatchFigures]:
    bank = func.coalesce(first_reason("bank").as_string(), literal("unknown")).label("bank")
    source = func.coalesce(BankEntry.source, literal("unknown")).label("source")
    rows = s.execute(select(bank, source, func.count())
                     .select_from(CheckRecord)
                     .outerjoin(BankEntry, BankEntry.id == first_reason("entry").as_integer())
                     .where(CheckRecord.kind == "upload", is_match(),
                            *_within(CheckRecord.created_at, period))
                     .group_by(bank, source).order_by(bank, source)).all()
    return [MatchFigures(bank=b, source=src, uploads=int(n)) for b, src, n in rows]


def nearest_rank(s: Session, durations: Select[Any], count: int,
                 share: float) -> float | None:
    """The nearest-rank percentile (the value at rank ceil(share * count), 1-based) of
    the one-column query ``durations``, found by the database (ORDER BY ... OFFSET)."""
    if count == 0:
        return None
    sub = durations.subquery()
    column = next(iter(sub.c))
    rank = max(1, math.ceil(share * count))
    value = s.scalar(select(column).order_by(column).offset(rank - 1).limit(1))
    return None if value is None else round(float(value), 3)


def takedown_figures(s: Session, period: Period) -> list[TakedownFigures]:
    """Takedown requests received in ``period`` by regime and for all ("all"): removed,
    removed within 48 hours, median and 95th-percentile time from receipt to closing."""
    cases = [TakedownCase.merged_into.is_(None), *_within(TakedownCase.received_at, period)]
    removal = (select(TakedownCase.id.label("case_id"), TakedownCase.regime.label("regime"),
                      seconds_between(s, TakedownCase.received_at, func.max(CaseEvent.at))
                      .label("seconds"))
               .join(CaseEvent, CaseEvent.case_id == TakedownCase.id)
               .where(*cases, CaseEvent.kind == EventKind.CLOSED.value)
               .group_by(TakedownCase.id, TakedownCase.regime, TakedownCase.received_at)
               .subquery())
    limit = REMOVAL_DEADLINE.total_seconds() + _EPSILON_S
    requests = {str(r): int(n) for r, n in s.execute(
        select(TakedownCase.regime, func.count()).where(*cases)
        .group_by(TakedownCase.regime)).all()}
    removed = {regime: (int(n), int(fast or 0)) for regime, n, fast in s.execute(
        select(removal.c.regime, func.count(),
               func.sum(case((removal.c.seconds <= limit, 1), else_=0)))
        .group_by(removal.c.regime)).all()}
    out = []
    for regime in [*sorted(requests), "all"]:
        if regime == "all":
            n_requests = sum(requests.values())
            n_removed = sum(r[0] for r in removed.values())
            fast = sum(r[1] for r in removed.values())
            durations = select(removal.c.seconds)
        else:
            n_requests = requests[regime]
            n_removed, fast = removed.get(regime, (0, 0))
            durations = select(removal.c.seconds).where(removal.c.regime == regime)
        out.append(TakedownFigures(
            regime=regime, requests=n_requests, removed=n_removed, removed_within_48h=fast,
            share_within_48h=round(fast / n_removed, 4) if n_removed else None,
            median_time_to_removal_s=nearest_rank(s, durations, n_removed, 0.5),
            p95_time_to_removal_s=nearest_rank(s, durations, n_removed, 0.95)))
    return out


def _reviews(s: Session, period: Period) -> list[ReviewFigures]:
    created = _within(ReviewItem.created_at, period)
    decided = and_(ReviewItem.status == "closed", ReviewItem.closed_at.is_not(None))
    rows = s.execute(select(ReviewItem.queue, func.count(),
                            func.sum(case((decided, 1), else_=0)))
                     .where(*created).group_by(ReviewItem.queue)
                     .order_by(ReviewItem.queue)).all()
    out = []
    for queue, n, n_decided in rows:
        durations = (select(seconds_between(s, ReviewItem.created_at, ReviewItem.closed_at))
                     .where(*created, decided, ReviewItem.queue == queue))
        out.append(ReviewFigures(
            queue=queue, created=int(n), decided=int(n_decided or 0),
            median_time_to_decision_s=nearest_rank(s, durations, int(n_decided or 0), 0.5),
            p95_time_to_decision_s=nearest_rank(s, durations, int(n_decided or 0), 0.95)))
    return out


def _appeals(s: Session, period: Period) -> list[AppealFigures]:
    clause = func.coalesce(ReviewItem.clause, literal("none")).label("clause")
    decided = and_(ReviewItem.status == "closed",
                   ReviewItem.outcome.in_(("uphold", "overturn")))
    rows = s.execute(select(clause, func.count(), func.sum(case((decided, 1), else_=0)),
                            func.sum(case((ReviewItem.outcome == "overturn", 1), else_=0)))
                     .select_from(Appeal)
                     .outerjoin(ReviewItem, ReviewItem.id == Appeal.review_item_id)
                     .where(*_within(Appeal.filed_at, period))
                     .group_by(clause).order_by(clause)).all()
    return [AppealFigures(clause=c, filed=int(n), decided=int(d or 0), overturned=int(o or 0),
                          overturn_rate=round(int(o or 0) / int(d), 4) if d else None)
            for c, n, d, o in rows]


def _enforcement(s: Session, period: Period) -> list[EnforcementFigures]:
    strikes = {c: (int(n), int(a)) for c, n, a in s.execute(
        select(Strike.clause, func.count(), func.count(distinct(Strike.account_id)))
        .where(*_within(Strike.created_at, period)).group_by(Strike.clause)).all()}
    suspensions = {c: (int(n), int(a), int(p or 0)) for c, n, a, p in s.execute(
        select(Suspension.clause, func.count(), func.count(distinct(Suspension.account_id)),
               func.sum(case((Suspension.ends_at.is_(None), 1), else_=0)))
        .where(*_within(Suspension.starts_at, period)).group_by(Suspension.clause)).all()}
    return [EnforcementFigures(
        clause=c, strikes=strikes.get(c, (0, 0))[0], accounts_struck=strikes.get(c, (0, 0))[1],
        suspensions=suspensions.get(c, (0, 0, 0))[0],
        accounts_suspended=suspensions.get(c, (0, 0, 0))[1],
        permanent_suspensions=suspensions.get(c, (0, 0, 0))[2])
        for c in sorted(set(strikes) | set(suspensions))]


def _distinct_accounts(s: Session, account: Any, at: Any, period: Period) -> int:
    return s.scalar(select(func.count(distinct(account))).where(*_within(at, period))) or 0


# -- flat forms ----------------------------------------------------------------------------


def csv_rows(report: TransparencyReport) -> list[tuple[str, str, str, Any]]:
    """The report as ``(section, key, measure, value)`` rows: ``key`` names the group as
    ``surface=upload;clause=II-3`` (empty for a total)."""
    rows: list[tuple[str, str, str, Any]] = [
        ("period", "", "start", report.period_start.isoformat()),
        ("period", "", "end_exclusive", report.period_end.isoformat())]
    sections: list[tuple[str, list[BaseModel], tuple[str, ...]]] = [
        ("surfaces", list(report.surfaces), ("surface",)),
        ("refusals", list(report.refusals), ("surface", "clause", "language")),
        ("matches", list(report.matches), ("bank", "source")),
        ("takedowns", list(report.takedowns), ("regime",)),
        ("reviews", list(report.reviews), ("queue",)),
        ("appeals", list(report.appeals), ("clause",)),
        ("enforcement", list(report.enforcement), ("clause",)),
    ]
    for section, items, keys in sections:
        for item in items:
            values = item.model_dump()
            key = ";".join(f"{k}={values[k]}" for k in keys)
            rows.extend((section, key, measure, "" if value is None else value)
                        for measure, value in values.items() if measure not in keys)
    for measure in ("accounts_struck", "accounts_suspended", "ncmec_reports_sent",
                    "statements_of_reasons_sent"):
        rows.append(("totals", "", measure, getattr(report, measure)))
    return rows
