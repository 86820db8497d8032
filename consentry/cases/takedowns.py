"""The takedown channel: a request becomes a case with a 48-hour deadline; the content and
every copy are located in the content index, removed through the platform callback,
banked under II-3, and the uploaders struck; everyone concerned is told.

Every step is an event on the case (``case_events``, append-only); the status is derived
from them. Network calls (callback, mail) happen outside database transactions, and each
is recorded whether it worked or not. The work a recorded case is owed is a durable job
(``case_jobs``) written with the case, so a crash between recording and answering never
leaves a case that nobody finishes.

What a case did belongs to that case: it strikes only for content its own callback took
down, holds the bank entries it relies on (an entry is disabled on reversal only when no
other standing case holds it) and restores only what it removed.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from consentry.banks.content import ContentRecord
from consentry.banks.registry import BankError, DuplicateEntry, EntryHashes
from consentry.banks.services import BankServices, entry_hashes
from consentry.banks.sweep import copies_of
from consentry.cases import notices
from consentry.cases.callback import (
    AttemptResult,
    PlatformCallback,
    RemovalRequest,
    retry_delay,
)
from consentry.cases.case import (
    APPEAL_DAYS,
    CLOSED_STATUSES,
    REMOVAL_DEADLINE,
    CaseStatus,
    CaseView,
    Due,
    Event,
    EventKind,
    LocatedItem,
    due_state,
    fold_case,
    hash_pin,
    new_case_number,
    new_pin,
    normalise_case_number,
    pin_matches,
    well_formed_case_number,
)
from consentry.cases.intake import (
    ContentLocator,
    Missing,
    Regime,
    TakedownSubmission,
    check_completeness,
    submission_from_dict,
    submission_to_dict,
)
from consentry.cases.senders import Sender, sender_from_env
from consentry.config import Settings
from consentry.enforcement.ledger import ensure_account, load_standing, record_consequence
from consentry.enforcement.standing import consequence_of
from consentry.errors import ConfigurationError, Conflict, InvalidRequest, NotFound
from consentry.limits import Limits, RateLimit
from consentry.policy.document import Policy
from consentry.policy.evaluate import Ruling
from consentry.signals.hashing import Fingerprint
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import Sandbox, shared_sandbox
from consentry.store import Database
from consentry.store.dialect import upsert_insert
from consentry.store.models import (
    CaseBankEntry,
    CaseEvent,
    CaseItem,
    CaseJob,
    CaseKey,
    Notification,
    RemovalAttempt,
    RemovalJob,
    Strike,
    TakedownCase,
)

_log = logging.getLogger(__name__)

TAKEDOWN_BANK = "takedowns"
CLAUSE = "II-3"  # known intimate image shared without consent
MAX_IMAGES = 4
MAX_LOCATORS = 50
MAX_TEXT = 5000
_CLAIM = timedelta(minutes=2)  # a claimed job another worker may take over after this
_SENDERS = 8  # callbacks in flight at once
INTAKE_LEASE: Final = timedelta(minutes=1)  # a worker that died holding intake: retaken
_INTAKE_ATTEMPTS: Final = 3
# Cases that stand behind their removals and bank entries (others were undone or refused).
_UNDONE: Final = frozenset({CaseStatus.REVERSED, CaseStatus.REJECTED})

# Public endpoints, per client: enough for a person or a helper organisation filing for
# several images, not for a flood of bogus removals; and failed status-page lookups (on
# top of each case's own lock), so one client cannot walk through case numbers.
SUBMISSIONS: Final = RateLimit(
    "takedown_submit", 30, 3600, code="too_many_requests",
    message="too many takedown requests from here; try again in an hour, or contact us "
            "directly")
LOOKUPS: Final = RateLimit(
    "case_lookup", 20, 900, code="too_many_attempts",
    message="too many wrong case numbers or PINs from here; try again in 15 minutes")
_LOCAL: Final = "local"  # the client of a call made in-process (CLI, tests)


class CaseNotFound(NotFound):
    """No case with that number (and PIN): the same answer either way."""

    code = "case_not_found"


class CaseStateError(Conflict):
    """The action does not apply to the case as it stands."""

    code = "wrong_state"


@dataclass(frozen=True)
class SubmitResult:
    case: CaseView
    pin: str  # shown once; only its scrypt hash is kept

    @property
    def missing(self) -> tuple[Missing, ...]:
        return self.case.missing


@dataclass
class _Located:
    records: dict[str, ContentRecord] = field(default_factory=dict)
    identified: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)
    already_removed: list[str] = field(default_factory=list)
    bank: list[EntryHashes] = field(default_factory=list)


class TakedownService:
    def __init__(self, db: Database, banks: BankServices, policy: Policy, *,
                 sender: Sender, callback: PlatformCallback | None,
                 status_url: str = "/takedown/status", appeal_url: str = "/appeals",
                 clock: Callable[[], datetime] | None = None,
                 limits: Limits | None = None,
                 intake_lease: timedelta = INTAKE_LEASE,
                 sandbox: Sandbox | None = None,
                 decode_timeout_s: float | None = None) -> None:
        self.db = db
        self._sandbox = sandbox  # None: the process-wide one
        self._decode_timeout_s = decode_timeout_s  # None: the sandbox's own
        self.banks = banks
        self.policy = policy
        self.sender = sender
        self.callback = callback
        self.status_url = status_url
        self.appeal_url = appeal_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self.limits = limits or Limits(db, clock=self._clock)
        self.intake_lease = intake_lease
        self._dispatch_lock = threading.Lock()

    @classmethod
    def from_settings(cls, db: Database, banks: BankServices, policy: Policy,
                      settings: Settings, *, sandbox: Sandbox | None = None,
                      ) -> TakedownService:
        callback = None
        if settings.removal_callback_url:
            if not settings.removal_callback_secret:
                raise ConfigurationError("CONSENTRY_REMOVAL_CALLBACK_SECRET must be set with "
                                         "CONSENTRY_REMOVAL_CALLBACK_URL")
            callback = PlatformCallback(settings.removal_callback_url,
                                        settings.removal_callback_secret)
        return cls(db, banks, policy, sender=sender_from_env(dict(settings.smtp),
                                                             settings.data_dir),
                   callback=callback, status_url=f"{settings.public_base}/takedown/status",
                   appeal_url=settings.appeal_url or f"{settings.public_base}/appeals",
                   intake_lease=timedelta(seconds=settings.job_lease_s),
                   sandbox=sandbox or shared_sandbox(settings.sandbox_limits()),
                   decode_timeout_s=settings.analysis_timeout_s)

    def run_retries(self, stop: threading.Event, every_s: float = 5.0) -> None:
        """A server's background worker until ``stop`` is set: finish intake that a
        crashed process left (at once, then every round), retry due callbacks, and now
        and then forget expired rate-limit counts."""
        rounds = 0
        while True:
            try:
                self.resume_intake()
                self.dispatch()
                if rounds % 720 == 0:  # hourly at the default pace
                    self.limits.prune()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                _log.exception("takedown worker round failed; retrying in %.0f s", every_s)
            rounds += 1
            if stop.wait(every_s):
                return

    def now(self) -> datetime:
        return self._clock()

    @property
    def sandbox(self) -> Sandbox:
        """Where requesters' images are decoded."""
        return self._sandbox or shared_sandbox()

    def _fingerprint(self, data: bytes) -> Fingerprint:
        return self.sandbox.fingerprint(data, timeout_s=self._decode_timeout_s)

    def close(self) -> None:
        if self.callback is not None:
            self.callback.close()

    # -- intake -----------------------------------------------------------------------

    def submit(self, submission: TakedownSubmission, images: Sequence[bytes] = (), *,
               channel: str = "api", client: str | None = None,
               callbacks_now: bool = True) -> SubmitResult:
        """Record a request as a case (complete or not) and, when complete, locate, bank
        and queue the removals at once. Invalid input raises ``InvalidRequest`` and records
        nothing; an incomplete request is kept and answered with what is missing. With
        ``callbacks_now=False`` the removal callbacks are left to ``dispatch`` (a web
        request answers the requester first, then calls the platform). ``client`` is the
        requester's address on public channels: at most 30 requests an hour each."""
        fps = _validate(submission, images, self._fingerprint)
        if client is not None:
            self.limits.take(SUBMISSIONS, client)
        submission = _with_image_hashes(submission, fps)
        now = self._clock()
        pin = new_pin()
        missing = check_completeness(submission).missing
        keys = _keys(submission.locator)
        with self.db.transaction() as s:
            primary = self._open_case_with(s, keys) if not missing else None
            row = TakedownCase(number=new_case_number(), pin_hash=hash_pin(pin),
                               regime=submission.regime.value, channel=channel,
                               received_at=now, deadline_at=now + REMOVAL_DEADLINE,
                               submission=submission_to_dict(submission),
                               merged_into=primary.number if primary else None)
            s.add(row)
            s.flush()
            s.add_all(CaseKey(case_id=row.id, key=k) for k in keys)
            if missing:
                self._event(s, row, EventKind.INCOMPLETE, "requester",
                            missing=[asdict(m) for m in missing])
            else:
                self._event(s, row, EventKind.RECEIVED, "requester", channel=channel)
            if primary is not None:
                self._event(s, row, EventKind.DUPLICATE_MERGED, "system", into=primary.number)
                self._event(s, primary, EventKind.DUPLICATE_MERGED, "system",
                            duplicate=row.number)
            job = self._intake_job(s, row, now)
            number = row.number
        self._run_intake(job, fps, callbacks_now=callbacks_now)
        return SubmitResult(self.view(number), pin)

    def amend(self, number: str, pin: str, submission: TakedownSubmission,
              images: Sequence[bytes] = (), *, client: str = _LOCAL,
              callbacks_now: bool = True) -> SubmitResult:
        """Complete an incomplete request (the requester proves it is theirs with the PIN)."""
        case = self.status(number, pin, client=client)
        if case.status is not CaseStatus.INCOMPLETE:
            raise CaseStateError(f"case {case.number} is {case.status.value}; only an "
                                 "incomplete request can be amended")
        fps = _validate(submission, images, self._fingerprint)
        submission = _with_image_hashes(submission, fps)
        missing = check_completeness(submission).missing
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, case.number)
            row.submission = submission_to_dict(submission)
            s.add_all(CaseKey(case_id=row.id, key=k) for k in _keys(submission.locator))
            self._event(s, row, EventKind.AMENDED, "requester")
            if missing:
                self._event(s, row, EventKind.INCOMPLETE, "requester",
                            missing=[asdict(m) for m in missing])
            else:
                self._event(s, row, EventKind.RECEIVED, "requester", channel=row.channel)
            job = self._intake_job(s, row, now)
        self._run_intake(job, fps, callbacks_now=callbacks_now)
        return SubmitResult(self.view(case.number), pin)

    def _intake_job(self, s: Session, row: TakedownCase, now: datetime) -> int:
        """The durable record of the work a just-recorded request is owed, held by this
        process for ``intake_lease`` (it is about to do the work itself)."""
        job = CaseJob(case_id=row.id, kind="intake", state="pending", attempts=0,
                      claimed_until=now + self.intake_lease, created_at=now)
        s.add(job)
        s.flush()
        return job.id

    def resume_intake(self, *, limit: int = 50) -> int:
        """Finish intake that a process left undone (it crashed, or its lease ran out):
        acknowledge, locate, bank and queue. Safe to run from several processes: jobs are
        claimed. Returns how many jobs were run."""
        now = self._clock()
        with self.db.transaction() as s:
            jobs = s.scalars(
                select(CaseJob).where(CaseJob.state == "pending",
                                      or_(CaseJob.claimed_until.is_(None),
                                          CaseJob.claimed_until < now))
                .order_by(CaseJob.id).limit(limit).with_for_update(skip_locked=True)).all()
            for job in jobs:
                job.claimed_until = now + self.intake_lease
            ids = [job.id for job in jobs]
        for job_id in ids:
            _log.info("takedown intake job %d: finishing work left by another process",
                      job_id)
            self._run_intake(job_id, ())
        return len(ids)

    def _run_intake(self, job_id: int, fps: Sequence[Fingerprint], *,
                    callbacks_now: bool = True) -> None:
        """Acknowledge, then locate and remove. The case is already recorded and its PIN
        must reach the requester, so a failure here is logged and recorded on the case
        (which stays open for a case worker, and the job is retried), never raised.
        Every step can run twice (a retried job) without doing anything twice."""
        with self.db.transaction() as s:
            job = s.get(CaseJob, job_id)
            assert job is not None
            row = s.get(TakedownCase, job.case_id)
            assert row is not None
            number, target = row.number, row.merged_into or row.number
            submission = submission_from_dict(row.submission)
        missing = check_completeness(submission).missing
        try:
            self._acknowledge(number, submission, missing)
            if not missing:
                self._process(target, submission, fps, callbacks_now=callbacks_now)
        except Exception as exc:  # noqa: BLE001 - see docstring
            _log.exception("takedown %s: processing failed after intake", target)
            self._intake_failed(job_id, target, exc)
            return
        with self.db.transaction() as s:
            job = s.get(CaseJob, job_id)
            assert job is not None
            job.state, job.finished_at, job.claimed_until = "done", self._clock(), None

    def _intake_failed(self, job_id: int, target: str, exc: Exception) -> None:
        now = self._clock()
        with self.db.transaction() as s:
            job = s.get(CaseJob, job_id)
            assert job is not None
            job.attempts += 1
            job.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if job.attempts >= _INTAKE_ATTEMPTS:
                job.state, job.finished_at = "failed", now  # a case worker takes over
            else:
                job.claimed_until = now + self.intake_lease * 2 ** job.attempts
            self._event(s, self._row(s, target), EventKind.PROCESSING_FAILED, "system",
                        error=job.last_error, attempts=job.attempts,
                        retrying=job.state == "pending")

    def _acknowledge(self, number: str, submission: TakedownSubmission,
                     missing: Sequence[Missing]) -> None:
        """Tell the requester the request arrived (or what it lacks), once per receipt."""
        email = submission.email.strip()
        if not email:
            return
        kind = "request_incomplete" if missing else "request_received"
        with self.db.transaction() as s:
            row = self._row(s, number)
            events = self._view(s, row).events
            deadline = row.deadline_at
        receipts = [i for i, e in enumerate(events)
                    if e.kind in (EventKind.RECEIVED, EventKind.INCOMPLETE)]
        since = events[receipts[-1] + 1:] if receipts else events
        if any(e.kind is EventKind.NOTIFIED and e.details.get("notice") == kind
               for e in since):
            return  # a retried job: already told
        regime = submission.regime
        notice = (notices.request_incomplete(number, regime, email, missing, self.status_url)
                  if missing else
                  notices.request_received(number, regime, email, deadline, self.status_url))
        self._send(number, notice)

    # -- locate, bank, remove ---------------------------------------------------------

    def _process(self, number: str, submission: TakedownSubmission,
                 fps: Sequence[Fingerprint], *, callbacks_now: bool = True) -> None:
        found = self._locate(submission.locator, fps)
        items = [LocatedItem(r.content_id, r.account_id, r.distance or 0,
                             r.content_id in found.identified)
                 for r in sorted(found.records.values(), key=lambda r: r.content_id)]
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, number)
            view = self._view(s, row)
            if submission.csam and not view.escalated:
                self._event(s, row, EventKind.ESCALATED, "system",
                            reason="reported as child sexual abuse material: needs a human "
                                   "review and a report to the authorities")
            if found.unknown:
                self._event(s, row, EventKind.NOT_FOUND, "system", unknown=found.unknown)
            if found.already_removed:
                self._event(s, row, EventKind.ALREADY_REMOVED, "system",
                            content_ids=found.already_removed)
            if items:
                self._event(s, row, EventKind.LOCATED, "system",
                            items=[asdict(i) for i in items])
                for item in items:
                    self._queue(s, row, item.content_id, "remove", now)
                self._event(s, row, EventKind.REMOVAL_REQUESTED, "system", count=len(items))
            self._claim_items(s, row, [i.content_id for i in items] + found.already_removed)
        self._bank(number, found.bank)
        if not items:
            self._settle(number)  # nothing to remove: tell the requester now
        if callbacks_now:
            self.dispatch()

    def _locate(self, locator: ContentLocator, fps: Sequence[Fingerprint]) -> _Located:
        """The named items, and every copy of them and of the reported images. Copies are
        found exactly as a bank sweep finds them (``banks.sweep.copies_of``); named items
        already taken down are reported as such, not removed or struck again."""
        content = self.banks.content
        found = _Located()
        named: list[ContentRecord] = []
        for content_id in locator.content_ids:
            record = content.get(content_id)
            named.append(record) if record else found.unknown.append(content_id)
        for url in locator.urls:
            record = content.by_url(url)
            named.append(record) if record else found.unknown.append(url)
        for record in named:
            hashes = content.stored_hashes(record.content_id)
            if hashes is None:
                continue
            found.bank.append(hashes)
            if record.removed:
                if record.content_id not in found.already_removed:
                    found.already_removed.append(record.content_id)
            else:
                found.identified.add(record.content_id)
                found.records[record.content_id] = record
            self._add_copies(found, hashes)
        for fp in fps:  # the pixels are at hand: also their exact rotations and mirrors
            found.bank.append(entry_hashes(fp))
            self._add_copies(found, entry_hashes(fp), fp.query_array())
        if not fps:  # a moderator re-running a case, or a job finished after a restart
            for md5, variants in _stored_images(locator):
                found.bank.append(EntryHashes(md5=md5, pdq_variants=variants))
                self._add_copies(found, found.bank[-1])
        for md5 in locator.md5_hashes:
            found.bank.append(EntryHashes(md5=md5.lower()))
            self._add_copies(found, found.bank[-1])
        for pdq in locator.pdq_hashes:
            found.bank.append(EntryHashes(pdq=pdq.lower()))
            self._add_copies(found, found.bank[-1])
        return found

    def _add_copies(self, found: _Located, hashes: EntryHashes,
                    exact: np.ndarray | None = None) -> None:
        for record in copies_of(self.banks.content, hashes, exact=exact,
                                include_removed=True):
            if record.removed:  # down already: the case stands behind it, nothing to do
                if record.content_id not in found.already_removed:
                    found.already_removed.append(record.content_id)
                continue
            known = found.records.get(record.content_id)
            if known is None or (record.distance or 0) < (known.distance or 0):
                found.records[record.content_id] = record

    def _claim_items(self, s: Session, row: TakedownCase, content_ids: Sequence[str]) -> None:
        """Record which content the case stands behind (for reversals of other cases)."""
        for content_id in dict.fromkeys(content_ids):
            s.execute(upsert_insert(s, CaseItem).values(case_id=row.id, content_id=content_id)
                      .on_conflict_do_nothing(index_elements=["case_id", "content_id"]))

    def _bank(self, number: str, hashes: Sequence[EntryHashes]) -> None:
        """Bank the case's hashes under II-3 and hold the entries: a new entry, one already
        there (from another case, an import or an administrator), or one a reversal had
        disabled, which this case turns back on."""
        registry = self.banks.registry
        try:
            registry.get(TAKEDOWN_BANK)
        except BankError:
            with suppress(BankError):  # created concurrently
                registry.create(TAKEDOWN_BANK, "block", "ncii", actor="takedowns",
                                description="images removed on a victim's takedown request")
        held: dict[int, bool] = {}  # entry id -> this case made it active
        for h in hashes:
            try:
                held[registry.add_entry(
                    TAKEDOWN_BANK, h, source="takedown", clause=CLAUSE, takedown_case=number,
                    details={"case": number}, actor="takedowns").id] = True
            except DuplicateEntry as dup:
                entry = registry.entry(dup.entry_id)
                if entry.status == "disabled":
                    registry.set_entry_enabled(entry.id, True, actor=f"takedowns:{number}")
                    held[entry.id] = True
                else:
                    held.setdefault(entry.id, False)
        if not held:
            return
        with self.db.transaction() as s:
            row = self._row(s, number)
            for entry_id, activated in held.items():
                s.execute(upsert_insert(s, CaseBankEntry)
                          .values(case_id=row.id, entry_id=entry_id, activated=activated)
                          .on_conflict_do_nothing(index_elements=["case_id", "entry_id"]))
            self._event(s, row, EventKind.BANKED, "system", bank=TAKEDOWN_BANK,
                        entries=sorted(held),
                        activated=sorted(e for e, made in held.items() if made))

    def _queue(self, s: Session, row: TakedownCase, content_id: str, action: str,
               now: datetime) -> None:
        key = f"{row.number}:{content_id}:{action}"
        job = s.scalars(select(RemovalJob).where(RemovalJob.idempotency_key == key)).first()
        if job is None:
            s.add(RemovalJob(case_id=row.id, content_id=content_id, action=action,
                             idempotency_key=key, state="pending", attempts=0,
                             next_attempt_at=now, created_at=now))
        elif job.state == "failed":  # a moderator asked again: start a fresh series
            job.state, job.attempts, job.next_attempt_at = "pending", 0, now

    def dispatch(self, *, limit: int = 500) -> int:
        """Make the callbacks that are due (first tries and retries); returns how many
        attempts were made. Safe to run from several processes: jobs are claimed."""
        callback = self.callback
        if callback is None:
            return 0
        with self._dispatch_lock:
            jobs = self._claim(limit)
            if not jobs:
                return 0
            with ThreadPoolExecutor(min(_SENDERS, len(jobs))) as pool:
                results = list(pool.map(lambda j: (j, callback.send(j[1])), jobs))
            cases = {self._finish(job_id, result) for (job_id, _), result in results}
            for number in cases:
                self._settle(number)
            return len(results)

    def _claim(self, limit: int) -> list[tuple[int, RemovalRequest]]:
        now = self._clock()
        with self.db.transaction() as s:
            due = s.execute(
                select(RemovalJob, TakedownCase.number, TakedownCase.regime)
                .join(TakedownCase, TakedownCase.id == RemovalJob.case_id)
                .where(RemovalJob.state == "pending", RemovalJob.next_attempt_at <= now,
                       or_(RemovalJob.claimed_until.is_(None), RemovalJob.claimed_until < now))
                .order_by(RemovalJob.next_attempt_at).limit(limit)
                # Another dispatcher (process) skips what this one is claiming.
                .with_for_update(of=RemovalJob, skip_locked=True)).all()
            out = []
            for job, number, regime in due:
                job.claimed_until = now + _CLAIM
                out.append((job.id, RemovalRequest(job.action, job.content_id, number, regime,
                                                   CLAUSE, job.idempotency_key)))
            return out

    def _finish(self, job_id: int, result: AttemptResult) -> str:
        now = self._clock()
        with self.db.transaction() as s:
            job = s.get(RemovalJob, job_id)
            assert job is not None
            row = s.get(TakedownCase, job.case_id)
            assert row is not None
            job.attempts += 1
            job.claimed_until = None
            s.add(RemovalAttempt(job_id=job.id, at=now, outcome=result.outcome,
                                 status_code=result.status_code, detail=result.detail,
                                 duration_ms=result.duration_ms))
            if result.succeeded:
                job.state, job.finished_at, job.last_error = "done", now, None
                restored = job.action == "restore"
                self._event(s, row, EventKind.ITEM_RESTORED if restored
                            else EventKind.ITEM_REMOVED, "system",
                            content_id=job.content_id, attempts=job.attempts,
                            outcome=result.outcome)
            else:
                job.last_error = f"{result.outcome} {result.status_code or ''} {result.detail}"
                delay = retry_delay(job.attempts)
                if delay is None:
                    job.state, job.finished_at = "failed", now
                    self._event(s, row, EventKind.REMOVAL_FAILED, "system",
                                content_id=job.content_id, action=job.action,
                                attempts=job.attempts, error=job.last_error[:300])
                else:
                    job.next_attempt_at = now + delay
            number = row.number
        if result.succeeded:
            self.banks.content.mark_removed([job.content_id], removed=job.action == "remove")
        return number

    def _settle(self, number: str) -> None:
        """Once no callback is pending: strike the uploaders of what this case removed,
        close the case and tell everyone (each at most once per case)."""
        with self.db.transaction() as s:
            row = self._row(s, number)
            pending = s.scalar(select(func.count()).select_from(RemovalJob).where(
                RemovalJob.case_id == row.id, RemovalJob.state == "pending"))
            if pending:
                return
            view = self._view(s, row)
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
            for account, content_ids in uploaders.items():
                if account not in struck:
                    self._strike(s, row, account, content_ids, now)
            down = len(view.removed) + len(view.already_removed)
            complete = bool(down) and not view.failed and len(view.removed) == len(view.located)
            if complete:
                row.closed_at = now
                self._event(s, row, EventKind.CLOSED, "system", removed=len(view.removed),
                            already_removed=len(view.already_removed))
            regime, requesters = row.regime, self._requesters(s, row)
            banked = any(e.kind is EventKind.BANKED for e in view.events)
            located, removed = view.located, set(view.removed)
            already = len(view.already_removed)
        if not located and not complete:
            for email in requesters:
                self._send(number, notices.nothing_found(number, Regime(regime), email,
                                                         banked=banked))
            return
        for account, content_ids in uploaders.items():
            if account not in struck:
                self._send(number, notices.statement_of_reasons(
                    number, Regime(regime), account, content_ids, self._clause_title(),
                    automated=True, appeal_url=self.appeal_url, appeal_days=APPEAL_DAYS))
        if complete:
            copies = sum(1 for i in located if not i.identified and i.content_id in removed)
            for email in requesters:
                self._send(number, notices.content_removed(
                    number, Regime(regime), email, down, copies,
                    already_removed=already, banked=banked))

    def _strike(self, s: Session, row: TakedownCase, account: str,
                content_ids: Sequence[str], now: datetime) -> None:
        ensure_account(s, account, now, lock=True)
        before = load_standing(s, account, now)
        consequence = consequence_of(Ruling("block", CLAUSE, ()), before, self.policy, now)
        record_consequence(s, account, CLAUSE, consequence, None, now, takedown_case=row.number)
        self._event(s, row, EventKind.STRUCK, "system", account=account,
                    content_ids=list(content_ids), weight=consequence.strike_weight,
                    suspended=consequence.suspends)

    def _clause_title(self) -> str:
        return f"{CLAUSE}: {self.policy.clause(CLAUSE).title}"

    # -- moderators ---------------------------------------------------------------------

    def remove(self, number: str, *, actor: str, content_ids: Sequence[str] = ()) -> CaseView:
        """A moderator confirms removal: re-locate (with any content ids they add) and
        retry failed callbacks. Only a complete request that is open (received, located)
        or appealed can be acted on."""
        view = self.view(number)
        if view.merged_into:
            raise CaseStateError(f"case {view.number} was merged into {view.merged_into}; "
                                 "act on that case")
        if view.status not in {CaseStatus.RECEIVED, CaseStatus.LOCATED, CaseStatus.APPEALED}:
            raise CaseStateError(f"case {view.number} is {view.status.value}; nothing to remove")
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            submission = submission_from_dict(row.submission)
            if check_completeness(submission).missing:
                raise CaseStateError(f"case {view.number} is an incomplete request; it "
                                     "cannot be acted on until the requester completes it")
            row.closed_at = None
            self._event(s, row, EventKind.RECEIVED, actor, automated=False,
                        note="removal confirmed by a moderator")
            # The moderator's action supersedes intake still waiting for a retry.
            s.execute(update(CaseJob).where(CaseJob.case_id == row.id,
                                            CaseJob.state == "pending")
                      .values(state="done", finished_at=self._clock(), claimed_until=None))
        if content_ids:
            submission = _with_content_ids(submission, content_ids)
        self._process(view.number, submission, ())
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            for job in s.scalars(select(RemovalJob).where(RemovalJob.case_id == row.id,
                                                           RemovalJob.state == "failed")):
                self._queue(s, row, job.content_id, job.action, self._clock())
        self.dispatch()
        return self.view(view.number)

    def reject(self, number: str, reasons: Sequence[str], *, actor: str) -> CaseView:
        """Refuse a request that is still open (or appealed), with reasons the requester
        is sent."""
        reasons = [r.strip() for r in reasons if r.strip()]
        if not reasons:
            raise InvalidRequest("reasons_required", "a rejection needs at least one reason "
                                 "the requester can read", field="reasons")
        view = self.view(number)
        if view.status in CLOSED_STATUSES:
            raise CaseStateError(f"case {view.number} is already {view.status.value}")
        if view.removed_here:
            raise CaseStateError(f"case {view.number} has removed content; reverse it instead")
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            s.execute(update(RemovalJob).where(RemovalJob.case_id == row.id,
                                               RemovalJob.state == "pending")
                      .values(state="failed", last_error="case rejected"))
            row.closed_at = self._clock()
            self._event(s, row, EventKind.REJECTED, actor, automated=False, reasons=reasons)
            requesters = self._requesters(s, row)
        for email in requesters:
            self._send(view.number, notices.request_rejected(view.number, Regime(view.regime),
                                                             email, reasons))
        return self.view(view.number)

    def reverse(self, number: str, reason: str, *, actor: str) -> CaseView:
        """Undo a removal (the Act protects good-faith removal; a moderator may still find
        it was wrong): restore what this case removed, release the bank entries it holds
        and revoke its strikes. Content or entries another standing case relies on stay
        as they are."""
        if not reason.strip():
            raise InvalidRequest("reason_required", "a reversal needs a reason", field="reason")
        view = self.view(number)
        if view.status is CaseStatus.REVERSED or (view.status is not CaseStatus.REMOVED
                                                  and not view.removed_here):
            raise CaseStateError(f"case {view.number} is {view.status.value}; only a case "
                                 "whose content was removed can be reversed")
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            others = self._standing_claims(s, row)
            restore = [c for c in view.removed_here if c not in others]
            for content_id in restore:
                self._queue(s, row, content_id, "restore", now)
            s.execute(update(Strike).where(Strike.takedown_case == row.number,
                                           Strike.revoked_at.is_(None)).values(revoked_at=now))
            row.closed_at = now
            self._event(s, row, EventKind.REVERSED, actor, automated=False, reason=reason,
                        restored=restore, kept=[c for c in view.removed_here if c in others])
            release = self._entries_to_release(s, row)
            requesters = self._requesters(s, row)
        for entry_id in release:
            with suppress(BankError):  # already removed by an administrator
                self.banks.registry.set_entry_enabled(entry_id, False, actor=actor)
        regime = Regime(view.regime)
        for email in requesters:
            self._send(view.number, notices.removal_reversed(view.number, regime, email, reason))
        by_account: dict[str, list[str]] = {}
        for item in view.located:
            if item.content_id in restore and item.account_id:
                by_account.setdefault(item.account_id, []).append(item.content_id)
        for account, ids in by_account.items():
            self._send(view.number, notices.restored(view.number, account, ids, reason))
        self.dispatch()
        return self.view(view.number)

    def _standing_claims(self, s: Session, row: TakedownCase) -> set[str]:
        """Content that other cases, not reversed or rejected, stand behind."""
        claims = s.execute(select(CaseItem.content_id, TakedownCase).join(
            TakedownCase, TakedownCase.id == CaseItem.case_id).where(
            CaseItem.case_id != row.id, CaseItem.content_id.in_(
                select(CaseItem.content_id).where(CaseItem.case_id == row.id)))).all()
        return {content_id for content_id, other in claims
                if self._view(s, other).status not in _UNDONE}

    def _entries_to_release(self, s: Session, row: TakedownCase) -> list[int]:
        """The entries this case made active that no other standing case holds."""
        mine = s.scalars(select(CaseBankEntry.entry_id).where(
            CaseBankEntry.case_id == row.id, CaseBankEntry.activated.is_(True))).all()
        release = []
        for entry_id in mine:
            holders = s.scalars(select(TakedownCase).join(
                CaseBankEntry, CaseBankEntry.case_id == TakedownCase.id).where(
                CaseBankEntry.entry_id == entry_id, TakedownCase.id != row.id)).all()
            if all(self._view(s, other).status in _UNDONE for other in holders):
                release.append(entry_id)
        return release

    def appeal(self, number: str, pin: str, reason: str, *, client: str = _LOCAL) -> CaseView:
        """The requester contests a rejection."""
        case = self.status(number, pin, client=client)
        if case.status is not CaseStatus.REJECTED:
            raise CaseStateError(f"case {case.number} is {case.status.value}; only a "
                                 "rejected request can be appealed")
        with self.db.transaction() as s:
            row = self._row(s, case.number)
            row.closed_at = None
            self._event(s, row, EventKind.APPEALED, "requester", automated=False,
                        reason=reason.strip()[:MAX_TEXT])
        return self.view(case.number)

    # -- reading ------------------------------------------------------------------------

    def status(self, number: str, pin: str, *, client: str = _LOCAL) -> CaseView:
        """The requester's view, only with the right number and PIN.

        Guessing is limited twice, counted before the PIN is checked so that concurrent
        guesses cannot slip through: each client gets five guesses per case number before
        a lock (per client, so nobody can lock the requester out), and 20 failed lookups
        in 15 minutes. An unknown number is guarded exactly like a real one, so neither
        the answer nor the lock says whether a case exists."""
        ticket = self.limits.take(LOOKUPS, client)
        target = normalise_case_number(number)
        if not well_formed_case_number(target):
            pin_matches(pin, _dummy_pin_hash())  # same work as a real check
            raise CaseNotFound("no case with that number and PIN")
        self.limits.admit_guess(target, client)
        with self.db.transaction() as s:
            row = s.scalars(select(TakedownCase).where(TakedownCase.number == target)).first()
            stored = row.pin_hash if row is not None else None
        right = pin_matches(pin.strip(), stored or _dummy_pin_hash()) and stored is not None
        self.limits.settle_guess(target, client, right=right)
        if not right:
            raise CaseNotFound("no case with that number and PIN")
        self.limits.refund(ticket)  # only failed lookups count against the client
        return self.view(target)

    def view(self, number: str) -> CaseView:
        with self.db.transaction() as s:
            row = self._row(s, number)
            if row.merged_into:  # a merged duplicate shows the case doing the work
                primary = self._view(s, self._row(s, row.merged_into))
                return replace(self._view(s, row), status=primary.status,
                               removed_at=primary.removed_at, located=primary.located,
                               removed=primary.removed, failed=primary.failed,
                               already_removed=primary.already_removed)
            return self._view(s, row)

    def list_cases(self, due: Due = Due.OPEN) -> list[CaseView]:
        """Open cases (not merged), soonest deadline first; ``overdue`` or ``at_risk``
        narrows the list."""
        now = self._clock()
        with self.db.transaction() as s:
            rows = s.scalars(select(TakedownCase).where(
                TakedownCase.closed_at.is_(None), TakedownCase.merged_into.is_(None))
                .order_by(TakedownCase.deadline_at)).all()
            views = [self._view(s, r) for r in rows]
        # Escalated cases (reported CSAM) first, then by deadline.
        views = sorted((v for v in views if v.status not in CLOSED_STATUSES),
                       key=lambda v: not v.escalated)
        if due is Due.OPEN:
            return views
        if due is Due.AT_RISK:
            return [v for v in views if due_state(v.deadline_at, now) is Due.AT_RISK]
        return [v for v in views if due_state(v.deadline_at, now) is Due.OVERDUE]

    def sla(self, since: datetime | None = None) -> dict[str, Any]:
        """Receipt-to-removal figures for the transparency report (one aggregate query
        each; the time to removal is from receipt to the case's last ``closed`` event)."""
        cases = select(TakedownCase.id).where(TakedownCase.merged_into.is_(None))
        if since is not None:
            cases = cases.where(TakedownCase.received_at >= since)
        with self.db.transaction() as s:
            total = s.scalar(select(func.count()).select_from(cases.subquery()))
            still_open = s.scalar(select(func.count()).select_from(
                cases.where(TakedownCase.closed_at.is_(None)).subquery()))
            closed = s.execute(
                select(TakedownCase.received_at, func.max(CaseEvent.at))
                .join(CaseEvent, CaseEvent.case_id == TakedownCase.id)
                .where(TakedownCase.id.in_(cases), CaseEvent.kind == EventKind.CLOSED.value)
                .group_by(TakedownCase.id, TakedownCase.received_at)).all()
        times = sorted((at - received).total_seconds() for received, at in closed)
        return {
            "cases": total,
            "removed": len(times),
            "removed_within_deadline": sum(1 for t in times
                                           if t <= REMOVAL_DEADLINE.total_seconds()),
            "median_time_to_removal_s": times[len(times) // 2] if times else None,
            "slowest_time_to_removal_s": times[-1] if times else None,
            "open": still_open,
        }

    # -- shared steps -------------------------------------------------------------------

    def _row(self, s: Session, number: str) -> TakedownCase:
        row = s.scalars(select(TakedownCase).where(
            TakedownCase.number == normalise_case_number(number))).first()
        if row is None:
            raise CaseNotFound(f"no case {number!r}")
        return row

    def _view(self, s: Session, row: TakedownCase) -> CaseView:
        events = [Event(EventKind(e.kind), e.at, e.actor, e.automated, e.details)
                  for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == row.id)
                                     .order_by(CaseEvent.id))]
        return fold_case(row.number, row.regime, row.received_at, row.deadline_at,
                         row.merged_into, events)

    def _open_case_with(self, s: Session, keys: Sequence[str]) -> TakedownCase | None:
        if not keys:
            return None
        return s.scalars(select(TakedownCase).join(CaseKey, CaseKey.case_id == TakedownCase.id)
                         .where(CaseKey.key.in_(list(keys)), TakedownCase.closed_at.is_(None),
                                TakedownCase.merged_into.is_(None))
                         .order_by(TakedownCase.id)).first()

    def _requesters(self, s: Session, row: TakedownCase) -> list[str]:
        """The case's requester and those of duplicates merged into it."""
        rows = [row, *s.scalars(select(TakedownCase).where(
            TakedownCase.merged_into == row.number))]
        emails = [str(r.submission.get("email", "")).strip() for r in rows]
        return list(dict.fromkeys(e for e in emails if e))

    def _event(self, s: Session, row: TakedownCase, kind: EventKind, actor: str, *,
               automated: bool = True, **details: Any) -> None:
        s.add(CaseEvent(case_id=row.id, kind=kind.value, at=self._clock(), actor=actor,
                        automated=automated, details=details))

    def _send(self, number: str, notice: notices.Notice) -> None:
        delivery = self.sender.send(notice)
        with self.db.transaction() as s:
            row = self._row(s, number)
            note = Notification(case_id=row.id, kind=notice.kind, recipient=notice.recipient,
                                subject=notice.subject, body=notice.body,
                                channel=delivery.channel, delivered=delivery.delivered,
                                detail=delivery.detail[:1000], at=self._clock())
            s.add(note)
            s.flush()
            self._event(s, row, EventKind.NOTIFIED, "system", notification=note.id,
                        notice=notice.kind, delivered=delivery.delivered,
                        to="requester" if "@" in notice.recipient else notice.recipient)


@functools.cache
def _dummy_pin_hash() -> str:
    """A real scrypt hash to check unknown case numbers against, made once on first use
    (not at import: every CLI start would pay for it)."""
    return hash_pin("00000000")


def _validate(submission: TakedownSubmission, images: Sequence[bytes],
              fingerprint: Callable[[bytes], Fingerprint]) -> list[Fingerprint]:
    """Check a submission's fields and hash its images (``fingerprint``: in the decoding
    sandbox), or raise ``InvalidRequest`` naming the field."""
    loc = submission.locator
    if len(images) > MAX_IMAGES:
        raise InvalidRequest("too_many_images", f"at most {MAX_IMAGES} images per request",
                             field="images")
    count = len(loc.content_ids) + len(loc.urls) + len(loc.pdq_hashes) + len(loc.md5_hashes)
    if count > MAX_LOCATORS:
        raise InvalidRequest("too_many_items", f"at most {MAX_LOCATORS} links, ids and hashes "
                             "per request; send several requests", field="content")
    for name, values, limit in (("urls", loc.urls, 2048), ("content_ids", loc.content_ids, 200),
                                ("pdq_hashes", loc.pdq_hashes, 200),
                                ("md5_hashes", loc.md5_hashes, 200)):
        for i, value in enumerate(values):
            if not value.strip() or len(value) > limit or not value.isprintable():
                raise InvalidRequest("invalid_locator", f"each of {name} must be 1-{limit} "
                                     "printable characters", field=f"{name}[{i}]")
    for name in ("statement", "requester_name", "signature", "other_contact", "email"):
        value = getattr(submission, name)
        if len(value) > MAX_TEXT:
            raise InvalidRequest("text_too_long", f"{name} is longer than {MAX_TEXT} "
                                 "characters", field=name)
        if "\x00" in value:
            raise InvalidRequest("invalid_text", f"{name} contains a NUL character",
                                 field=name)
    fps = []
    for index, data in enumerate(images):
        try:
            fps.append(fingerprint(data))
        except ImageRejected as exc:  # also a decode that overran or crashed: a clear 4xx
            raise InvalidRequest(exc.code, f"image {index + 1}: {exc}",
                                 field=f"images[{index}]", too_large=exc.too_large) from exc
    return fps


def _with_image_hashes(submission: TakedownSubmission,
                       fps: Sequence[Fingerprint]) -> TakedownSubmission:
    """Uploaded images are kept only as hashes (the bytes are not stored)."""
    if not fps:
        return submission
    loc = submission.locator
    return replace(submission, locator=replace(
        loc, images=len(fps), image_md5s=tuple(fp.hashes.md5 or "" for fp in fps),
        image_pdqs=tuple(fp.hashes.pdq.hex for fp in fps if fp.hashes.pdq),
        image_variants=tuple(tuple(entry_hashes(fp).indexed()) for fp in fps)))


def _stored_images(locator: ContentLocator) -> list[tuple[str | None, tuple[tuple[str, str],
                                                                            ...]]]:
    """The reported images as stored: MD5 and every indexed PDQ variant (cases recorded
    before variants were kept have the full PDQ only)."""
    if locator.image_variants:
        return [(md5 or None, tuple(variants)) for md5, variants in
                zip(locator.image_md5s, locator.image_variants, strict=False)]
    return [(md5 or None, (("full", pdq),)) for md5, pdq in
            zip(locator.image_md5s, locator.image_pdqs, strict=False)]


def _with_content_ids(submission: TakedownSubmission,
                      content_ids: Sequence[str]) -> TakedownSubmission:
    loc = submission.locator
    return replace(submission, locator=replace(
        loc, content_ids=tuple(dict.fromkeys((*loc.content_ids, *content_ids)))))


def _keys(locator: ContentLocator) -> list[str]:
    keys = [f"content:{c}" for c in locator.content_ids] + [f"url:{u}" for u in locator.urls]
    keys += [f"md5:{h.lower()}" for h in (*locator.md5_hashes, *locator.image_md5s)]
    keys += [f"pdq:{h.lower()}" for h in locator.pdq_hashes]
    return list(dict.fromkeys(k[:300] for k in keys))
