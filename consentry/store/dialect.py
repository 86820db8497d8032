"""Statements whose SQL differs by backend, behind one function each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_insert(session: Session, table: Any) -> Any:
    """An ``INSERT`` that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``
    on the session's backend (PostgreSQL and SQLite both do; they spell it alike)."""
    dialect = session.get_bind().dialect.name
    try:
        return _INSERTS[dialect](table)
    except KeyError:
        raise NotImplementedError(f"no upsert for the {dialect} backend") from None


def seconds_between(session: Session, start: Any, end: Any) -> Any:
    """A SQL expression for ``end - start`` in seconds (a float), for durations that are
    aggregated by the database rather than loaded row by row."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def hour_of(session: Session, column: Any) -> Any:
    """A SQL expression naming the UTC hour a time falls in, as text
    ``YYYY-MM-DD HH:00`` on every backend (timestamps are stored in UTC)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", column)
