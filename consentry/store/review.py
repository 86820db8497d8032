"""Opening a review item, in the caller's transaction: the gate opens items in the same
transaction that records a check, the takedown service in the one that records a case,
so an item is never lost between a decision and its review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consentry.store.dialect import upsert_insert
from consentry.store.models import ReviewEvent, ReviewItem


def open_item(s: Session, *, queue: str, kind: str, subject: str, account_id: str | None,
              clause: str | None, restricted: bool, has_media: bool, priority: int,
              due_at: datetime, now: datetime, excluded_user_id: int | None = None,
              details: dict[str, Any] | None = None) -> int:
    """The open item for (``kind``, ``subject``), created if there is none (idempotent:
    a retried request or job opens nothing twice)."""
    created = s.execute(
        upsert_insert(s, ReviewItem).values(
            queue=queue, kind=kind, subject=subject, account_id=account_id, clause=clause,
            restricted=restricted, has_media=has_media, priority=priority, due_at=due_at,
            status="open", excluded_user_id=excluded_user_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "subject"])
        .returning(ReviewItem.id)).scalar()
    if created is None:
        return s.scalars(select(ReviewItem.id).where(ReviewItem.kind == kind,
                                                     ReviewItem.subject == subject)).one()
    s.add(ReviewEvent(item_id=created, kind="created", actor="system", at=now,
                      details=details or {}))
    return created


def close_item(s: Session, *, kind: str, subject: str, outcome: str, now: datetime,
               actor: str = "system", details: dict[str, Any] | None = None) -> bool:
    """Close the open item for (``kind``, ``subject``) because what it was about is settled
    elsewhere (a takedown case closed by the automation): True if there was one."""
    row = s.scalars(select(ReviewItem).where(ReviewItem.kind == kind,
                                             ReviewItem.subject == subject,
                                             ReviewItem.status == "open")).first()
    if row is None:
        return False
    row.status, row.outcome, row.closed_at = "closed", outcome, now
    row.claimed_by, row.claimed_until = None, None
    s.add(ReviewEvent(item_id=row.id, kind="closed", actor=actor, at=now,
                      details={"outcome": outcome, **(details or {})}))
    return True
