"""Statements whose SQL differs by backend, behind one function each."""

from __future__ import annotations

from typing import Any

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
