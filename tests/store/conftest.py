"""Store fixtures: a migrated PostgreSQL schema of its own, for the tests that need
PostgreSQL itself (concurrent commits, partitions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_schema import postgres_schema

from consentry.store import Database


@pytest.fixture
def pg() -> Iterator[Database]:
    with postgres_schema() as url:
        db = Database(url)
        db.migrate()
        yield db
        db.dispose()
