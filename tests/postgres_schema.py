"""The test PostgreSQL database (CONSENTRY_TEST_POSTGRES_URL), one schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("CONSENTRY_TEST_POSTGRES_URL")


@contextmanager
def postgres_schema(prefix: str = "t") -> Iterator[str]:
    """The test PostgreSQL database's URL, confined to a new schema of its own that is
    dropped afterwards."""
    assert POSTGRES_URL
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
