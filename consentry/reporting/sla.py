"""Takedown SLA figures: how fast content named in a request came down, against the legal
48-hour clock. For the case list and the transparency report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select

from consentry.cases.case import REMOVAL_DEADLINE, EventKind
from consentry.store import Database
from consentry.store.models import CaseEvent, TakedownCase


class TakedownSla(BaseModel):
    cases: int
    removed: int
    removed_within_deadline: int
    median_time_to_removal_s: float | None
    slowest_time_to_removal_s: float | None
    open: int


def takedown_sla(db: Database, since: datetime | None = None) -> TakedownSla:
    """Receipt-to-removal figures (one aggregate query each; the time to removal runs from
    receipt to the case's last ``closed`` event). Merged duplicates are not counted."""
    cases = select(TakedownCase.id).where(TakedownCase.merged_into.is_(None))
    if since is not None:
        cases = cases.where(TakedownCase.received_at >= since)
    with db.transaction() as s:
        total = s.scalar(select(func.count()).select_from(cases.subquery())) or 0
        still_open = s.scalar(select(func.count()).select_from(
            cases.where(TakedownCase.closed_at.is_(None)).subquery())) or 0
        closed = s.execute(
            select(TakedownCase.received_at, func.max(CaseEvent.at))
            .join(CaseEvent, CaseEvent.case_id == TakedownCase.id)
            .where(TakedownCase.id.in_(cases), CaseEvent.kind == EventKind.CLOSED.value)
            .group_by(TakedownCase.id, TakedownCase.received_at)).all()
    times = sorted((at - received).total_seconds() for received, at in closed)
    return TakedownSla(
        cases=total, removed=len(times),
        removed_within_deadline=sum(1 for t in times if t <= REMOVAL_DEADLINE.total_seconds()),
        median_time_to_removal_s=times[len(times) // 2] if times else None,
        slowest_time_to_removal_s=times[-1] if times else None,
        open=still_open)
