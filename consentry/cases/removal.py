"""The removal worker: the outbound work of takedown cases. It makes the signed platform
callbacks that remove or restore content, retries them with backoff, and settles a case
once none is pending (strikes for what the case removed, statements of reasons to the
uploaders, the requester told). Runs in a server's background thread or on its own
(``consentry worker``); several can run at once: jobs are claimed with SKIP LOCKED."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from consentry.banks.content import ContentIndex
from consentry.cases import notices
from consentry.cases.callback import AttemptResult, PlatformCallback, RemovalRequest, retry_delay
from consentry.cases.case import APPEAL_DAYS, CLOSED_STATUSES, CaseStatus, EventKind
from consentry.cases.holdings import CLAUSE
from consentry.cases.intake import Regime
from consentry.cases.log import CaseLog
from consentry.enforcement.appeal_tokens import (
    AppealRef,
    AppealSubject,
    AppealTokens,
    takedown_subject,
)
from consentry.enforcement.ledger import ensure_account, load_standing, record_consequence
from consentry.enforcement.standing import consequence_of
from consentry.policy.document import Policy
from consentry.policy.evaluate import Ruling
from consentry.store.models import (
    DsaStatement,
    RemovalAttempt,
    RemovalJob,
    ReviewEvent,
    ReviewItem,
    TakedownCase,
)
from consentry.store.review import close_item

# A claimed job another worker may take over after this (the claimer died mid-callback);
# by default twice the intake lease (CONSENTRY_JOB_LEASE_S), 2 minutes.
_CLAIM: Final = timedelta(minutes=2)
_SENDERS: Final = 8  # callbacks in flight at once


class RemovalQueue:
    def __init__(self, log: CaseLog, content: ContentIndex, policy: Policy, *,
                 callback: PlatformCallback | None, appeal_url: str,
                 appeal_tokens: AppealTokens, clock: Callable[[], datetime],
                 lease: timedelta = _CLAIM) -> None:
        self.log = log
        self.lease = lease
        self.db = log.db
        self.content = content
        self.policy = policy
        self.callback = callback
        self.appeal_url = appeal_url
        self.appeal_tokens = appeal_tokens
        self._clock = clock
        self._lock = threading.Lock()

    def queue(self, s: Session, row: TakedownCase, content_id: str, action: str,
              now: datetime) -> None:
        """Owe the platform one callback (``remove`` or ``restore``), idempotently."""
        key = f"{row.number}:{content_id}:{action}"
        job = s.scalars(select(RemovalJob).where(RemovalJob.idempotency_key == key)).first()
        if job is None:
            s.add(RemovalJob(case_id=row.id, content_id=content_id, action=action,
                             idempotency_key=key, state="pending", attempts=0,
                             next_attempt_at=now, created_at=now))
        elif job.state == "failed":  # a moderator asked again: start a fresh series
            job.state, job.attempts, job.next_attempt_at = "pending", 0, now

    def queue_for_review(self, s: Session, item_id: int, content_id: str, action: str,
                         now: datetime) -> None:
        """Owe the platform one callback for a review decision (a refusal overturned:
        ``restore``; a held request refused: ``remove``), idempotently."""
        key = f"RV-{item_id}:{content_id}:{action}"
        if s.scalars(select(RemovalJob.id).where(RemovalJob.idempotency_key == key)).first():
            return
        s.add(RemovalJob(review_item_id=item_id, content_id=content_id, action=action,
                         idempotency_key=key, state="pending", attempts=0,
                         next_attempt_at=now, created_at=now))

    def requeue_failed(self, s: Session, row: TakedownCase, now: datetime) -> None:
        for job in s.scalars(select(RemovalJob).where(RemovalJob.case_id == row.id,
                                                       RemovalJob.state == "failed")):
            self.queue(s, row, job.content_id, job.action, now)

    def cancel_pending(self, s: Session, row: TakedownCase, reason: str) -> None:
        """Give up the case's callbacks not yet made (a rejected case)."""
        s.execute(update(RemovalJob).where(RemovalJob.case_id == row.id,
                                           RemovalJob.state == "pending")
                  .values(state="failed", last_error=reason))

    def dispatch(self, *, limit: int = 500) -> int:
        """Make the callbacks that are due (first tries and retries); returns how many
        attempts were made. Safe to run from several processes: jobs are claimed."""
        callback = self.callback
        if callback is None:
            return 0
        with self._lock:
            jobs = self._claim(limit)
            if not jobs:
                return 0
            with ThreadPoolExecutor(min(_SENDERS, len(jobs))) as pool:
                results = list(pool.map(lambda j: (j, callback.send(j[1])), jobs))
            cases = {self._finish(job_id, result) for (job_id, _), result in results}
            for number in cases - {None}:
                assert number is not None
                self.settle(number)
            return len(results)

    @staticmethod
    def _record_attempt(s: Session, job: RemovalJob, result: AttemptResult,
                        now: datetime) -> str:
        """Record one callback attempt on its job: "done", "retry" (scheduled) or
        "failed" (no retries left)."""
        job.attempts += 1
        job.claimed_until = None
        s.add(RemovalAttempt(job_id=job.id, at=now, outcome=result.outcome,
                             status_code=result.status_code, detail=result.detail,
                             duration_ms=result.duration_ms))
        if result.succeeded:
            job.state, job.finished_at, job.last_error = "done", now, None
            return "done"
        job.last_error = f"{result.outcome} {result.status_code or ''} {result.detail}"
        delay = retry_delay(job.attempts)
        if delay is None:
            job.state, job.finished_at = "failed", now
            return "failed"
        job.next_attempt_at = now + delay
        return "retry"

    def _finish_review_job(self, s: Session, job: RemovalJob, result: AttemptResult,
                           now: datetime) -> None:
        outcome = self._record_attempt(s, job, result, now)
        if outcome == "retry":
            return
        kind = ("callback_failed" if outcome == "failed" else
                "content_restored" if job.action == "restore" else "content_removed")
        s.add(ReviewEvent(item_id=job.review_item_id, kind=kind, actor="system", at=now,
                          details={"content_id": job.content_id, "attempts": job.attempts,
                                   "outcome": result.outcome}))

    def _claim(self, limit: int) -> list[tuple[int, RemovalRequest]]:
        now = self._clock()
        with self.db.transaction() as s:
            due = s.execute(
                select(RemovalJob, TakedownCase.number, TakedownCase.regime, ReviewItem.clause)
                .outerjoin(TakedownCase, TakedownCase.id == RemovalJob.case_id)
                .outerjoin(ReviewItem, ReviewItem.id == RemovalJob.review_item_id)
                .where(RemovalJob.state == "pending", RemovalJob.next_attempt_at <= now,
                       or_(RemovalJob.claimed_until.is_(None), RemovalJob.claimed_until < now))
                .order_by(RemovalJob.next_attempt_at).limit(limit)
                # Another dispatcher (process) skips what this one is claiming.
                .with_for_update(of=RemovalJob, skip_locked=True)).all()
            out = []
            for job, number, regime, review_clause in due:
                job.claimed_until = now + self.lease
                if number is None:  # a review decision, not a takedown case
                    number, regime = f"RV-{job.review_item_id}", "review"
                out.append((job.id, RemovalRequest(
                    job.action, job.content_id, number, regime,
                    review_clause or CLAUSE,
                    job.idempotency_key)))
            return out

    def _finish(self, job_id: int, result: AttemptResult) -> str | None:
        """Record an attempt; the case number to settle (None for a review decision)."""
        now = self._clock()
        with self.db.transaction() as s:
            job = s.get_one(RemovalJob, job_id)
            if job.case_id is None:
                self._finish_review_job(s, job, result, now)
                return None
            row = s.get_one(TakedownCase, job.case_id)
            outcome = self._record_attempt(s, job, result, now)
            if outcome == "done":
                restored = job.action == "restore"
                self.log.event(s, row, EventKind.ITEM_RESTORED if restored
                               else EventKind.ITEM_REMOVED, "system",
                               content_id=job.content_id, attempts=job.attempts,
                               outcome=result.outcome)
            elif outcome == "failed":
                self.log.event(s, row, EventKind.REMOVAL_FAILED, "system",
                               content_id=job.content_id, action=job.action,
                               attempts=job.attempts, error=(job.last_error or "")[:300])
            number = row.number
        if result.succeeded:
            self.content.mark_removed([job.content_id], removed=job.action == "remove")
        return number

    def settle(self, number: str) -> None:
        """Once no callback is pending: strike the uploaders of what this case removed,
        close the case and tell everyone (each at most once per case)."""
        log = self.log
        with self.db.transaction() as s:
            # Two workers may finish a case's last callbacks at once: one settles, and
            # the other then finds it settled (no uploader struck twice).
            row = log.row(s, number, lock=True)
            pending = s.scalar(select(func.count()).select_from(RemovalJob).where(
                RemovalJob.case_id == row.id, RemovalJob.state == "pending"))
            if pending:
                return
            view = log.view(s, row)
            if view.status is not CaseStatus.LOCATED and (view.located or
                                                          view.status in CLOSED_STATUSES):
                return
            struck = {e.details.get("account") for e in view.events
                      if e.kind is EventKind.STRUCK}
            removed_here = set(view.removed_here)
            uploaders: dict[str, list[str]] = {}
            for item in view.located:
                if item.content_id in removed_here and item.account_id:
                    uploaders.setdefault(item.account_id, []).append(item.content_id)
            now = self._clock()
            statements: dict[str, str | None] = {}
            for account, content_ids in uploaders.items():
                if account not in struck:
                    statements[account] = self._strike(s, row, account, content_ids, now)
            down = len(view.removed) + len(view.already_removed)
            complete = bool(down) and not view.failed and len(view.removed) == len(view.located)
            if complete:
                row.closed_at = now
                log.event(s, row, EventKind.CLOSED, "system", removed=len(view.removed),
                          already_removed=len(view.already_removed))
                close_item(s, kind="takedown_case", subject=row.number, outcome="removed",
                           now=now)
            regime, requesters = Regime(row.regime), log.requesters(s, row)
            # Each notice goes at most once per receipt of the case, whichever worker
            # settles it (two can, at once, or again after a crash).
            once = f"receipt-{sum(1 for e in view.events if e.kind is EventKind.RECEIVED)}"
            banked = any(e.kind is EventKind.BANKED for e in view.events)
            located, removed = view.located, set(view.removed)
            already = len(view.already_removed)
        if not located and not complete:
            for email in requesters:
                log.send(number, notices.nothing_found(number, regime, email, banked=banked),
                         once=once)
            return
        title = f"{CLAUSE}: {self.policy.clause(CLAUSE).title}"
        for account, content_ids in uploaders.items():
            if account not in struck:
                token = self.appeal_tokens.issue(AppealRef(
                    AppealSubject.TAKEDOWN, takedown_subject(number, account)))
                log.send(number, notices.statement_of_reasons(
                    number, regime, account, content_ids, title, automated=True,
                    appeal_url=f"{self.appeal_url}?token={token}", appeal_days=APPEAL_DAYS,
                    statement=statements.get(account)), once=once)
        if complete:
            copies = sum(1 for i in located if not i.identified and i.content_id in removed)
            for email in requesters:
                log.send(number, notices.content_removed(
                    number, regime, email, down, copies, already_removed=already,
                    banked=banked), once=once)

    def _strike(self, s: Session, row: TakedownCase, account: str,
                content_ids: Sequence[str], now: datetime) -> str | None:
        """Strike an uploader; the puid of the DSA statement of reasons kept with it."""
        ensure_account(s, account, now, lock=True)
        before = load_standing(s, account, now)
        consequence = consequence_of(Ruling("block", CLAUSE, ()), before, self.policy, now)
        record_consequence(s, account, CLAUSE, consequence, None, now, takedown_case=row.number)
        self.log.event(s, row, EventKind.STRUCK, "system", account=account,
                       content_ids=list(content_ids), weight=consequence.strike_weight,
                       suspended=consequence.suspends)
        s.flush()  # the statement is kept as the strike is written
        return s.scalar(select(DsaStatement.puid).where(
            DsaStatement.subject_kind == "takedown", DsaStatement.account_id == account,
            DsaStatement.subject.startswith(f"{row.number}:")))
