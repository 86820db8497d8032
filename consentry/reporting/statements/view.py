"""A statement of reasons as shown to the person it concerns: the statement as sent to
the database, where its submission stands, and the link to appeal the decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from consentry.enforcement.appeal_tokens import (
    AppealRef,
    AppealSubject,
    AppealTokens,
    takedown_subject,
)
from consentry.errors import NotFound
from consentry.store import Database
from consentry.store.models import DsaStatement, Suspension


class StatementView(BaseModel):
    puid: str
    status: str  # queued | sent | failed (submission to the Transparency Database)
    created_at: datetime
    sent_at: datetime | None
    statement: dict[str, Any]
    appeal_url: str | None  # None: nothing this person can appeal here


def statement_view(db: Database, puid: str, tokens: AppealTokens, *, public_base: str,
                   appeal_base: str) -> StatementView:
    """The statement ``puid``; ``NotFound`` when there is none."""
    with db.transaction() as s:
        row = s.get(DsaStatement, puid[:500])
        if row is None:
            raise NotFound(f"no statement of reasons {puid!r}", code="unknown_statement")
        ref: AppealRef | None = None
        base = f"{public_base}/appeals"
        if row.subject_kind == "check":
            ref = AppealRef(AppealSubject.CHECK, row.subject)
        elif row.subject_kind == "takedown" and row.account_id:
            ref = AppealRef(AppealSubject.TAKEDOWN,
                            takedown_subject(row.subject.split(":")[0], row.account_id))
            base = appeal_base
        elif row.subject_kind == "suspension":
            check_id = s.scalar(select(Suspension.check_id).where(
                Suspension.id == int(row.subject.split(":")[0])))
            ref = AppealRef(AppealSubject.CHECK, check_id) if check_id else None
        return StatementView(
            puid=row.puid, status=row.status, created_at=row.created_at,
            sent_at=row.sent_at, statement=row.statement,
            appeal_url=f"{base}?token={tokens.issue(ref)}" if ref else None)
