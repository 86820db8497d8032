"""Retention of the largest table: allowed checks are kept for a configured number of
days (``CONSENTRY_CHECK_RETENTION_DAYS``), then deleted in batches. They hold no evidence
(no prompt, no image, only digests) and nothing refers to them but a conversation's
expired turns. Refused and held checks are evidence of what the gate did and stay.

Their audit links stay: ``consentry audit verify`` does not report rows removed since
they were recorded (docs/audit.md), so the chain still proves what was decided."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from consentry.store.database import Database
from consentry.store.models import CheckRecord, ThreadTurn


def purge_allowed_checks(db: Database, *, before: datetime, batch: int = 5000) -> int:
    """Delete allowed checks recorded before ``before``; how many."""
    purged = 0
    while True:
        with db.transaction() as s:
            ids = list(s.scalars(select(CheckRecord.id).where(
                CheckRecord.decision == "allow", CheckRecord.created_at < before)
                .limit(batch)))
            if not ids:
                return purged
            s.execute(delete(ThreadTurn).where(ThreadTurn.check_id.in_(ids)))
            s.execute(delete(CheckRecord).where(CheckRecord.id.in_(ids)))
            purged += len(ids)
