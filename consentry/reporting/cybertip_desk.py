"""Reports to NCMEC's CyberTipline, from evidence to report id.

1. **Drafted** automatically (``draft_pending``, run by the worker): every sealed CS-1 or
   KM-1 evidence item not yet in a report joins its account's open draft, or starts
   one, so one user's files go in one report.
2. **Confirmed** by a child-safety reviewer (or an admin) in the console, who chooses the
   industry classification and says why; nothing is sent before.
3. **Sent** (``send_confirmed``, run by the worker): the files are opened from the vault
   (each opening recorded), the report is built and sent through
   ``reporting.cybertipline``; its progress is stored after every step, so a crash
   resumes without a second report, and NCMEC's report id is kept.

Confirming and sending are links of the audit chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from consentry import audit
from consentry.config import Settings
from consentry.errors import ConsentryError, InvalidRequest, NotFound
from consentry.evidence import Vault
from consentry.reporting.cybertipline import (
    CyberTipline,
    CyberTiplineSettings,
    CyberTipReport,
    FileAnnotation,
    Incident,
    IncidentType,
    IndustryClassification,
    ReportedFile,
    ReportedUser,
    Reporter,
    ReportingPerson,
    SubmissionProgress,
)
from consentry.reporting.cybertipline.model import TEXT_MAX
from consentry.store import Database
from consentry.store.models import CyberTipReport as ReportRow
from consentry.store.models import CyberTipReportItem, EvidenceItem

_log = logging.getLogger(__name__)

REPORTED_CLAUSES: Final = ("CS-1", "KM-1")
MIN_RATIONALE_WORDS: Final = 3


# The lock one CyberTipline sender holds across every process sharing the database. The
# PostgreSQL advisory lock number is the one earlier releases took: replicas of both
# exclude each other during a rolling upgrade.
_SENDER_LOCK: Final = "cybertip-sender"
_SENDER_KEY: Final = 0x43595442  # "CYTB"


class ReportGone(NotFound):
    code = "report_not_found"


@dataclass(frozen=True)
class ReportItem:
    evidence_id: str
    subject: str  # the check
    clause: str | None
    created_at: datetime
    content_sha256: str | None
    has_content: bool


@dataclass(frozen=True)
class ReportView:
    id: int
    key: str
    account_id: str | None
    status: str
    created_at: datetime
    confirmed_by: str | None
    classification: str | None
    rationale: str | None
    ncmec_report_id: str | None
    last_error: str | None
    items: list[ReportItem] = field(default_factory=list)


class CyberTipDesk:
    def __init__(self, db: Database, vault: Vault, *, settings: Settings,
                 clock: Callable[[], datetime] | None = None,
                 tipline: Callable[[CyberTiplineSettings], CyberTipline] = CyberTipline,
                 ) -> None:
        self.db = db
        self.vault = vault
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tipline = tipline
        self._sending = threading.Lock()

    # -- drafting ---------------------------------------------------------------------

    def draft_pending(self) -> int:
        """Put every sealed CS-1/KM-1 item not yet in a report into its account's draft;
        how many items were added."""
        now = self._clock()
        added = 0
        with self.db.transaction() as s:
            pending = list(s.scalars(select(EvidenceItem).where(
                EvidenceItem.subject_kind == "check",
                EvidenceItem.clause.in_(REPORTED_CLAUSES),
                EvidenceItem.purged_at.is_(None),
                ~EvidenceItem.id.in_(select(CyberTipReportItem.evidence_id)))
                .order_by(EvidenceItem.created_at).limit(500)))
            for item in pending:
                draft = s.scalars(select(ReportRow).where(
                    ReportRow.status == "draft",
                    ReportRow.account_id == item.account_id if item.account_id
                    else ReportRow.account_id.is_(None))).first()
                if draft is None:
                    draft = ReportRow(key=f"ct-{item.id}", account_id=item.account_id,
                                      status="draft", created_at=now, updated_at=now)
                    s.add(draft)
                    s.flush()
                s.add(CyberTipReportItem(evidence_id=item.id, report_id=draft.id))
                draft.updated_at = now
                added += 1
        return added

    # -- reading ----------------------------------------------------------------------

    def reports(self, *, status: str | None = None, limit: int = 100) -> list[ReportView]:
        with self.db.transaction() as s:
            query = select(ReportRow).order_by(ReportRow.id.desc()).limit(limit)
            if status:
                query = query.where(ReportRow.status == status)
            return [self._view(s, row) for row in s.scalars(query)]

    def report(self, report_id: int) -> ReportView:
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id)
            if row is None:
                raise ReportGone(f"no report {report_id}")
            return self._view(s, row)

    # -- confirming -------------------------------------------------------------------

    def confirm(self, report_id: int, *, actor: str, classification: str,
                rationale: str) -> ReportView:
        """A child-safety reviewer confirms a draft: it may now be sent."""
        try:
            chosen = IndustryClassification(classification.strip().upper())
        except ValueError:
            raise InvalidRequest("unknown_classification", "choose the industry "
                                 "classification: A1, A2, B1 or B2",
                                 field="classification") from None
        rationale = " ".join((rationale or "").split())
        if len(rationale.split()) < MIN_RATIONALE_WORDS:
            raise InvalidRequest("rationale_too_short", "say why in a few words (at least "
                                 "three): it is kept with the report", field="rationale")
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id, with_for_update=True)
            if row is None:
                raise ReportGone(f"no report {report_id}")
            if row.status != "draft":
                raise InvalidRequest("not_a_draft", f"report {report_id} is {row.status}, "
                                     "not a draft", field="report")
            now = self._clock()
            row.status, row.confirmed_by, row.confirmed_at = "confirmed", actor, now
            row.classification, row.rationale, row.updated_at = chosen.value, rationale, now
            audit.record(s, "cybertip.confirmed", str(report_id), actor,
                         classification=chosen.value, rationale=rationale)
            return self._view(s, row)

    # -- sending ----------------------------------------------------------------------

    def configured(self) -> CyberTiplineSettings | None:
        st = self.settings
        if not (st.cybertip_url and st.cybertip_username and st.cybertip_password
                and st.cybertip_reporter_email):
            return None
        return CyberTiplineSettings(st.cybertip_url, st.cybertip_username,
                                    st.cybertip_password)

    def send_confirmed(self) -> int:
        """Send every confirmed report (resuming any half-sent one); how many finished.
        One sender at a time: a call while another sends (this process's job thread, or
        another replica's on PostgreSQL) returns 0 and leaves the reports to it."""
        connection = self.configured()
        if connection is None:
            return 0  # drafted and confirmed; they wait for the CyberTipline's settings
        with self._one_sender() as alone:
            return self._send_all(connection) if alone else 0

    @contextmanager
    def _one_sender(self) -> Iterator[bool]:
        # Two senders of one report would each see the other's upload in progress with no
        # answer yet, take it for a lost one, and retract the report at NCMEC. Reports
        # are few, so the whole send is exclusive: a thread lock in this process, and the
        # database's lock across every process that shares it (replicas and workers on
        # PostgreSQL, ``serve --workers N`` on one SQLite file), freed if its holder dies.
        if not self._sending.acquire(blocking=False):
            yield False
            return
        try:
            with self.db.exclusive(_SENDER_LOCK, _SENDER_KEY) as alone:
                yield alone
        finally:
            self._sending.release()

    def _send_all(self, connection: CyberTiplineSettings) -> int:
        with self.db.transaction() as s:
            ids = list(s.scalars(select(ReportRow.id).where(ReportRow.status == "confirmed")
                                 .order_by(ReportRow.id)))
        sent = 0
        with self._tipline(connection) as tipline:
            for report_id in ids:
                try:
                    sent += self._send(tipline, report_id)
                except ConsentryError as exc:
                    self._failed(report_id, str(exc))
        return sent

    def _send(self, tipline: CyberTipline, report_id: int) -> int:
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id)
            assert row is not None
            items = self._view(s, row).items
            stored = (SubmissionProgress.from_json(json.loads(row.progress))
                      if row.progress else None)
            key, account = row.key, row.account_id
            classification = IndustryClassification(row.classification or "A1")
        opened = [self.vault.open(i.evidence_id, actor="system",
                                  why=f"sending CyberTipline report {report_id}")
                  for i in items]
        files, data, first = [], {}, None
        for item, found in zip(items, opened, strict=True):
            at = datetime.fromisoformat(str(found.metadata.get("at")))
            first = at if first is None or at < first else first
            if found.content is None:
                continue
            data[item.evidence_id] = found.content
            files.append(ReportedFile(
                key=item.evidence_id, file_name=f"{item.subject}.bin",
                sha256=hashlib.sha256(found.content).hexdigest(),
                md5=hashlib.md5(found.content, usedforsecurity=False).hexdigest(),
                annotations=frozenset({FileAnnotation.GENERATIVE_AI}),
                industry_classification=classification, viewed_by_esp=False,
                publicly_available=False, uploaded_at=at))
        prompts = sorted({str(o.metadata["prompt"]) for o in opened if o.metadata.get("prompt")})
        report = CyberTipReport(
            key=key, incident=Incident(IncidentType.CHILD_PORNOGRAPHY,
                                       first or self._clock()),
            reporter=Reporter(ReportingPerson(email=self.settings.cybertip_reporter_email
                                              or "")),
            reported_user=ReportedUser(esp_identifier=account or "unknown"),
            files=tuple(files),
            additional_info=("Requests refused by Consentry under "
                             f"{', '.join(sorted({i.clause or '' for i in items}))}"
                             + (f"; prompts: {' | '.join(prompts)}" if prompts else ""))[:TEXT_MAX])
        progress = tipline.send(report, data, stored,
                                on_progress=lambda p: self._progress(report_id, p))
        if not progress.finished:
            return 0
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id, with_for_update=True)
            assert row is not None
            row.status, row.ncmec_report_id = "sent", progress.report_id
            row.progress = json.dumps(progress.to_json())
            row.last_error, row.updated_at = None, self._clock()
            audit.record(s, "cybertip.sent", str(report_id), "system",
                         ncmec_report_id=progress.report_id, files=len(files))
        return 1

    def _progress(self, report_id: int, progress: SubmissionProgress) -> None:
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id, with_for_update=True)
            if row is not None:
                row.progress, row.updated_at = json.dumps(progress.to_json()), self._clock()

    def _failed(self, report_id: int, why: str) -> None:
        _log.warning("CyberTipline report %d not sent: %s", report_id, why)
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id, with_for_update=True)
            if row is not None:
                row.last_error, row.updated_at = why[:2000], self._clock()

    # -- inside -----------------------------------------------------------------------

    @staticmethod
    def _view(s: Session, row: ReportRow) -> ReportView:
        items = [ReportItem(e.id, e.subject, e.clause, e.created_at, e.content_sha256,
                            e.content is not None)
                 for e in s.scalars(select(EvidenceItem).join(
                     CyberTipReportItem, CyberTipReportItem.evidence_id == EvidenceItem.id)
                     .where(CyberTipReportItem.report_id == row.id)
                     .order_by(EvidenceItem.created_at))]
        return ReportView(row.id, row.key, row.account_id, row.status, row.created_at,
                          row.confirmed_by, row.classification, row.rationale,
                          row.ncmec_report_id, row.last_error, items)

