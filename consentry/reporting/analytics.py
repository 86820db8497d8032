"""The event history the reports read, on the analytics engine (ClickHouse: embedded
``chdb`` or a cluster), and the transparency report's figures over checks counted there.

Checks are by far the largest table (one row per gate decision: hundreds of millions a
month on a large platform); the report's other tables (takedown cases, review items,
appeals, strikes...) are thousands to millions of rows and stay on the database.

``export_checks`` copies a period's checks in batches with what the report groups by
already derived by the database (the language of the first reason with a span, the first
reason's code, bank and entry), so the engine holds flat columns, not verdict JSON. The
tables are ``ReplacingMergeTree`` keyed by id and read with ``FINAL``: exporting a period
again, or two exports overlapping, counts every check once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from consentry.store import Database
from consentry.store.clickhouse import ClickHouse
from consentry.store.models import BankEntry, CheckRecord

_BATCH = 100_000
EXPORT_OVERLAP = timedelta(minutes=10)  # re-sent each run: late commits, clock skew
CHECKS_TABLE = "checks"
ENTRIES_TABLE = "bank_entries"


@dataclass(frozen=True)
class Window:
    """``start <= created_at < end`` (aware UTC); what ``transparency.Period`` is."""

    start: datetime
    end: datetime


def create_tables(engine: ClickHouse) -> None:
    """The analytics tables, if missing."""
    name = engine.database
    engine.command(
        f"CREATE TABLE IF NOT EXISTS {name}.{CHECKS_TABLE} (id String, "
        "kind LowCardinality(String), decision LowCardinality(String), "
        "clause LowCardinality(String), language LowCardinality(String), "
        "first_code LowCardinality(Nullable(String)), first_bank Nullable(String), "
        "first_entry Nullable(Int64), created_at DateTime64(6, 'UTC')) "
        "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(created_at) ORDER BY id")
    engine.command(
        f"CREATE TABLE IF NOT EXISTS {name}.{ENTRIES_TABLE} (id Int64, source String) "
        "ENGINE = ReplacingMergeTree ORDER BY id")


def _check_rows(db: Database, window: Window | None) -> Iterator[list[Any]]:
    from consentry.reporting.transparency import check_language, first_reason

    query = select(CheckRecord.id, CheckRecord.kind, CheckRecord.decision, CheckRecord.clause,
                   check_language(), first_reason("code").as_string(),
                   first_reason("bank").as_string(), first_reason("entry").as_integer(),
                   CheckRecord.created_at)
    if window is not None:
        query = query.where(CheckRecord.created_at >= window.start,
                            CheckRecord.created_at < window.end)
    with db.transaction() as s:
        result = s.execute(query.execution_options(yield_per=_BATCH))
        for part in result.partitions():
            yield [tuple(r) for r in part]


def export_checks(db: Database, engine: ClickHouse, window: Window | None = None) -> int:
    """Copy the checks created in ``window`` (all without one) and every bank entry's
    source into the engine; how many checks were sent. Safe to repeat."""
    create_tables(engine)
    sent = 0
    for rows in _check_rows(db, window):
        columns = list(zip(*rows, strict=True))
        engine.insert(CHECKS_TABLE, {
            "id": list(columns[0]), "kind": list(columns[1]), "decision": list(columns[2]),
            "clause": list(columns[3]), "language": list(columns[4]),
            "first_code": list(columns[5]), "first_bank": list(columns[6]),
            "first_entry": [None if e is None else int(e) for e in columns[7]],
            "created_at": [_utc(t) for t in columns[8]]})
        sent += len(rows)
    with db.transaction() as s:
        entries = s.execute(select(BankEntry.id, BankEntry.source)).all()
    if entries:
        engine.insert(ENTRIES_TABLE, {"id": [int(i) for i, _ in entries],
                                      "source": [str(src) for _, src in entries]})
    return sent


def export_recent(db: Database, engine: ClickHouse, now: datetime, *,
                  overlap: timedelta = EXPORT_OVERLAP) -> int:
    """Copy the checks recorded since the engine's latest, less ``overlap`` (a check
    committed late by a slow transaction, or stamped by a replica whose clock lags), and
    every check the first time; how many were sent. Run on a schedule; safe to repeat."""
    since = covered_until(engine, overlap=overlap)
    if since is None:
        return export_checks(db, engine)
    return export_checks(db, engine, Window(since, now + timedelta(days=1)))


def covered_until(engine: ClickHouse, *, overlap: timedelta = EXPORT_OVERLAP
                  ) -> datetime | None:
    """The time before which the engine holds every check (None: it holds none): its
    newest check less ``overlap``, the same allowance for late commits that
    ``export_recent`` re-sends. Checks from then on are counted on the database."""
    create_tables(engine)
    [(latest,)] = engine.rows(f"SELECT max(created_at) FROM {engine.database}.{CHECKS_TABLE}")
    if latest is None or _utc(latest).year <= 1970:  # an empty table's max is the epoch
        return None
    return _utc(latest) - overlap


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _bounds(window: Window) -> str:
    def literal(at: datetime) -> str:
        return f"toDateTime64('{_utc(at).strftime('%Y-%m-%d %H:%M:%S.%f')}', 6, 'UTC')"
    return f"created_at >= {literal(window.start)} AND created_at < {literal(window.end)}"


def surface_counts(engine: ClickHouse, window: Window) -> dict[str, tuple[int, int, int]]:
    """Checks by surface: (attempts, refused, held for review)."""
    rows = engine.rows(
        f"SELECT kind, count(), countIf(decision = 'block'), countIf(decision = 'review') "
        f"FROM {engine.database}.{CHECKS_TABLE} FINAL WHERE {_bounds(window)} GROUP BY kind")
    return {str(k): (int(n), int(b), int(r)) for k, n, b, r in rows}


def refusal_counts(engine: ClickHouse, window: Window) -> list[tuple[str, str, str, int]]:
    """Refused checks by surface, clause and language."""
    rows = engine.rows(
        f"SELECT kind, clause, language, count() FROM {engine.database}.{CHECKS_TABLE} FINAL "
        f"WHERE decision = 'block' AND {_bounds(window)} GROUP BY kind, clause, language "
        "ORDER BY kind, clause, language")
    return [(str(k), str(c), str(lang), int(n)) for k, c, lang, n in rows]


def match_counts(engine: ClickHouse, window: Window) -> list[tuple[str, str, int]]:
    """Uploads whose first reason is a hash match, by bank and the entry's source."""
    name = engine.database
    rows = engine.rows(
        f"SELECT coalesce(c.first_bank, 'unknown') AS bank, coalesce(e.source, 'unknown') "
        f"AS source, count() FROM (SELECT first_bank, first_entry FROM {name}.{CHECKS_TABLE} "
        f"FINAL WHERE kind = 'upload' AND first_code = 'hash_match' AND {_bounds(window)}) AS c "
        f"LEFT JOIN (SELECT id, source FROM {name}.{ENTRIES_TABLE} FINAL) AS e "
        "ON c.first_entry = e.id GROUP BY bank, source ORDER BY bank, source "
        "SETTINGS join_use_nulls = 1")
    return [(str(b), str(src), int(n)) for b, src, n in rows]
