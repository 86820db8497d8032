"""The register of regulator requests: what a regulator asked (Ofcom under OSA s.100, the
Commission under DSA Art. 67, ...), by when, and the packs and reports produced for it.
Every change names who made it and is a link of the audit chain. Who may change it is
the caller's to check (the console admits administrators only; the command line names an
administrator)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from consentry.audit.chain import record
from consentry.errors import InvalidRequest, NotFound
from consentry.store import Database
from consentry.store.models import RegulatorAttachment, RegulatorRequest

STATUSES: Final = ("open", "answered", "closed")
KINDS: Final = ("incident_pack", "transparency_report", "other")


@dataclass(frozen=True)
class Attachment:
    file_name: str
    sha256: str
    kind: str
    period_from: datetime | None
    period_to: datetime | None
    attached_at: datetime
    attached_by: str


@dataclass(frozen=True)
class RequestView:
    id: int
    regulator: str
    reference: str
    legal_basis: str
    questions: str
    received_at: datetime
    deadline: datetime
    status: str
    recorded_by: str
    updated_at: datetime
    updated_by: str
    attachments: tuple[Attachment, ...]

    def seconds_left(self, now: datetime) -> float:
        return (self.deadline - now).total_seconds()

    def countdown(self, now: datetime) -> str:
        """``due in 2 d 3 h`` or ``overdue by 5 h``."""
        left = self.seconds_left(now)
        text = _duration(abs(left))
        return f"due in {text}" if left >= 0 else f"overdue by {text}"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min"


def _text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise InvalidRequest("invalid_field", f"give the {field.replace('_', ' ')} "
                             f"(1 to {limit} characters)", field=field)
    return value


class RegulatorRegister:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def record(self, *, regulator: str, reference: str, legal_basis: str, questions: str,
               deadline: datetime, actor: str, received_at: datetime | None = None) -> int:
        """Add a request; its id."""
        if deadline.tzinfo is None:
            raise InvalidRequest("invalid_deadline", "give the deadline with its time zone",
                                 field="deadline")
        now = self._clock()
        row = RegulatorRequest(
            regulator=_text(regulator, "regulator", 200),
            reference=_text(reference, "reference", 200),
            legal_basis=_text(legal_basis, "legal_basis", 200),
            questions=_text(questions, "questions", 20_000), received_at=received_at or now,
            deadline=deadline, status="open", recorded_by=actor, updated_at=now,
            updated_by=actor)
        with self.db.transaction() as s:
            s.add(row)
            s.flush()
            record(s, "regulator_request.recorded", str(row.id), actor,
                   regulator=row.regulator, reference=row.reference,
                   legal_basis=row.legal_basis, deadline=deadline)
            return row.id

    def set_status(self, request_id: int, status: str, *, actor: str) -> None:
        if status not in STATUSES:
            raise InvalidRequest("invalid_status", f"the status is one of {', '.join(STATUSES)}",
                                 field="status")
        with self.db.transaction() as s:
            row = self._row(s, request_id)
            row.status, row.updated_at, row.updated_by = status, self._clock(), actor
            record(s, "regulator_request.status", str(request_id), actor, status=status)

    def attach(self, request_id: int, path: Path, *, kind: str, actor: str,
               period_from: datetime | None = None,
               period_to: datetime | None = None) -> Attachment:
        """Record a file produced for the request by its name and SHA-256."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return self.attach_digest(request_id, path.name, digest.hexdigest(), kind=kind,
                                  actor=actor, period_from=period_from, period_to=period_to)

    def attach_digest(self, request_id: int, file_name: str, sha256: str, *, kind: str,
                      actor: str, period_from: datetime | None = None,
                      period_to: datetime | None = None) -> Attachment:
        """Record a file produced for the request (kept by whoever sent it) by its name
        and SHA-256: the register proves what was answered, not stores it."""
        if kind not in KINDS:
            raise InvalidRequest("invalid_kind", f"the kind is one of {', '.join(KINDS)}",
                                 field="kind")
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, request_id)
            s.add(RegulatorAttachment(request_id=row.id, file_name=file_name,
                                      sha256=sha256, kind=kind,
                                      period_from=period_from, period_to=period_to,
                                      attached_at=now, attached_by=actor))
            row.updated_at, row.updated_by = now, actor
            record(s, "regulator_request.attached", str(request_id), actor,
                   file_name=file_name, sha256=sha256, file_kind=kind)
        return Attachment(file_name, sha256, kind, period_from, period_to, now, actor)

    def requests(self, *, open_only: bool = False) -> list[RequestView]:
        """Requests by deadline, soonest first."""
        with self.db.transaction() as s:
            query = select(RegulatorRequest).order_by(RegulatorRequest.deadline,
                                                      RegulatorRequest.id)
            if open_only:
                query = query.where(RegulatorRequest.status == "open")
            rows = list(s.scalars(query))
            attached: dict[int, list[Attachment]] = {}
            if rows:
                for a in s.scalars(select(RegulatorAttachment).where(
                        RegulatorAttachment.request_id.in_([r.id for r in rows]))
                        .order_by(RegulatorAttachment.id)):
                    attached.setdefault(a.request_id, []).append(Attachment(
                        a.file_name, a.sha256, a.kind, a.period_from, a.period_to,
                        a.attached_at, a.attached_by))
        return [RequestView(r.id, r.regulator, r.reference, r.legal_basis, r.questions,
                            r.received_at, r.deadline, r.status, r.recorded_by, r.updated_at,
                            r.updated_by, tuple(attached.get(r.id, ())))
                for r in rows]

    def now(self) -> datetime:
        return self._clock()

    @staticmethod
    def _row(s: Session, request_id: int) -> RegulatorRequest:
        row = s.get(RegulatorRequest, request_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no regulator request {request_id}", code="no_such_request")
        return row
