"""Persistence: SQLAlchemy models, the database handle and Alembic migrations."""

from consentry.store.database import Database, make_engine, migrate

__all__ = ["Database", "make_engine", "migrate"]
