"""Retention of the largest table: allowed checks are kept for a configured number of
days (``CONSENTRY_CHECK_RETENTION_DAYS``), then removed. They hold no evidence (no
prompt, no image, only digests) and nothing refers to them but a conversation's expired
turns. Refused and held checks are evidence of what the gate did and stay.

On PostgreSQL a day's allowed checks are one partition, dropped whole once the entire day
is past the retention (consentry.store.partitions); the rows outside the dated partitions
(ids from before partitioning, or a day whose partition was missing) and every check on
SQLite are deleted in batches. Idempotency keys are honoured as long as allowed checks
are kept, then deleted, so a key never names a check that is gone.

Their audit links stay: ``consentry audit verify`` does not report rows removed since
they were recorded (docs/audit.md), so the chain still proves what was decided."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, text, tuple_

from consentry.store.database import Database
from consentry.store.models import CheckKey, CheckRecord, ThreadTurn
from consentry.store.partitions import DEFAULT, LEGACY, drop_expired_partitions, is_partitioned


def purge_allowed_checks(db: Database, *, before: datetime, batch: int = 5000) -> int:
    """Remove allowed checks recorded before ``before`` (and every idempotency key used
    before it); how many checks."""
    purge_expired_keys(db, before=before, batch=batch)
    if not is_partitioned(db):
        return _delete_in_batches(db, before, batch, tables=None)
    dropped = drop_expired_partitions(db, before=before)
    return dropped + _delete_in_batches(db, before, batch, tables=(LEGACY, DEFAULT))


def purge_expired_keys(db: Database, *, before: datetime, batch: int = 5000) -> None:
    """Delete the idempotency keys first used before ``before``, a batch at a time."""
    key = tuple_(CheckKey.account_id, CheckKey.idempotency_key)
    while True:
        with db.transaction() as s:
            oldest = select(CheckKey.account_id, CheckKey.idempotency_key).where(
                CheckKey.created_at < before).limit(batch)
            done = s.execute(delete(CheckKey).where(key.in_(oldest)))
            if int(getattr(done, "rowcount", 0) or 0) < batch:
                return


def _delete_in_batches(db: Database, before: datetime, batch: int,
                       tables: tuple[str, ...] | None) -> int:
    """Delete allowed checks older than ``before`` a batch at a time: from ``checks`` or,
    on PostgreSQL, only from the named partitions (the dated ones are dropped whole)."""
    purged = 0
    for table in tables or (None,):
        while True:
            with db.transaction() as s:
                if table is None:
                    ids = list(s.scalars(select(CheckRecord.id).where(
                        CheckRecord.decision == "allow", CheckRecord.created_at < before)
                        .limit(batch)))
                else:
                    ids = list(s.scalars(text(
                        f"SELECT id FROM {table} WHERE decision = 'allow' "
                        "AND created_at < :before LIMIT :batch"),
                        {"before": before, "batch": batch}))
                if not ids:
                    break
                s.execute(delete(ThreadTurn).where(ThreadTurn.check_id.in_(ids)))
                s.execute(delete(CheckRecord).where(CheckRecord.id.in_(ids)))
                purged += len(ids)
    return purged
