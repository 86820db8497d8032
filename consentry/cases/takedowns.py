"""The takedown channel: a request becomes a case with a 48-hour deadline; the content and
every copy are located in the content index, removed through the platform callback,
banked under II-3, and the uploaders struck; everyone concerned is told.

Every step is an event on the case (``case_events``, append-only); the status is derived
from them. Network calls (callback, mail) happen outside database transactions, and each
is recorded whether it worked or not.
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
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from consentry.banks.content import ContentRecord
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankError, DuplicateEntry, EntryHashes
from consentry.banks.services import BankServices, entry_hashes
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
    lock_duration,
    new_case_number,
    new_pin,
    normalise_case_number,
    pin_matches,
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
from consentry.policy.document import Policy
from consentry.policy.evaluate import Ruling
from consentry.signals.hashing import Fingerprint, pdq_dihedral_estimates
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import Sandbox, shared_sandbox
from consentry.store import Database
from consentry.store.models import (
    CaseEvent,
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


class TakedownError(ValueError):
    """Bad input: a precise message, and the field it is about."""

    def __init__(self, code: str, message: str, field: str | None = None, *,
                 too_large: bool = False) -> None:
        super().__init__(message)
        self.code, self.field, self.too_large = code, field, too_large


class CaseNotFound(LookupError):
    """No case with that number (and PIN): the same answer either way."""


class CaseLocked(PermissionError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many wrong PINs; try again after {until:%H:%M} UTC")
        self.until = until


class CaseStateError(ValueError):
    """The action does not apply to the case as it stands."""


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
    bank: list[EntryHashes] = field(default_factory=list)


class TakedownService:
    def __init__(self, db: Database, banks: BankServices, policy: Policy, *,
                 sender: Sender, callback: PlatformCallback | None,
                 status_url: str = "/takedown/status", appeal_url: str = "/appeals",
                 clock: Callable[[], datetime] | None = None,
                 sandbox: Sandbox | None = None, decode_timeout_s: float | None = None,
                 ) -> None:
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
        self._dispatch_lock = threading.Lock()

    @classmethod
    def from_settings(cls, db: Database, banks: BankServices, policy: Policy,
                      settings: Settings, *, sandbox: Sandbox | None = None,
                      ) -> TakedownService:
        callback = None
        if settings.removal_callback_url:
            if not settings.removal_callback_secret:
                raise ValueError("CONSENTRY_REMOVAL_CALLBACK_SECRET must be set with "
                                 "CONSENTRY_REMOVAL_CALLBACK_URL")
            callback = PlatformCallback(settings.removal_callback_url,
                                        settings.removal_callback_secret)
        return cls(db, banks, policy, sender=sender_from_env(dict(settings.smtp),
                                                             settings.data_dir),
                   callback=callback, status_url=f"{settings.public_url}/takedown/status",
                   appeal_url=settings.appeal_url or f"{settings.public_url}/appeals",
                   sandbox=sandbox or shared_sandbox(settings.sandbox_limits()),
                   decode_timeout_s=settings.analysis_timeout_s)

    def run_retries(self, stop: threading.Event, every_s: float = 5.0) -> None:
        """Retry due callbacks until ``stop`` is set (a server's background thread)."""
        while not stop.wait(every_s):
            try:
                self.dispatch()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                _log.exception("takedown callback round failed; retrying in %.0f s", every_s)

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
               channel: str = "api", callbacks_now: bool = True) -> SubmitResult:
        """Record a request as a case (complete or not) and, when complete, locate, bank
        and queue the removals at once. Invalid input raises ``TakedownError`` and records
        nothing; an incomplete request is kept and answered with what is missing. With
        ``callbacks_now=False`` the removal callbacks are left to ``dispatch`` (a web
        request answers the requester first, then calls the platform)."""
        fps = _validate(submission, images, self._fingerprint)
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
                               merged_into=primary.number if primary else None,
                               failed_pins=0)
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
            number, target = row.number, (primary.number if primary else row.number)
        self._after_intake(number, target, submission, fps, missing, callbacks_now)
        return SubmitResult(self.view(number), pin)

    def amend(self, number: str, pin: str, submission: TakedownSubmission,
              images: Sequence[bytes] = (), *, callbacks_now: bool = True) -> SubmitResult:
        """Complete an incomplete request (the requester proves it is theirs with the PIN)."""
        case = self.status(number, pin)
        if case.status is not CaseStatus.INCOMPLETE:
            raise CaseStateError(f"case {case.number} is {case.status.value}; only an "
                                 "incomplete request can be amended")
        fps = _validate(submission, images, self._fingerprint)
        submission = _with_image_hashes(submission, fps)
        missing = check_completeness(submission).missing
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
        self._after_intake(case.number, case.number, submission, fps, missing, callbacks_now)
        return SubmitResult(self.view(case.number), pin)

    def _after_intake(self, number: str, target: str, submission: TakedownSubmission,
                      fps: Sequence[Fingerprint], missing: Sequence[Missing],
                      callbacks_now: bool) -> None:
        """Acknowledge, then locate and remove. The case is already recorded and its PIN
        must reach the requester, so a failure here is logged and recorded on the case
        (which stays open for a case worker), never raised."""
        try:
            self._acknowledge(number, submission, missing)
            if not missing:
                self._process(target, submission, fps, callbacks_now=callbacks_now)
        except Exception as exc:  # noqa: BLE001 - see docstring
            _log.exception("takedown %s: processing failed after intake", target)
            with self.db.transaction() as s:
                self._event(s, self._row(s, target), EventKind.PROCESSING_FAILED, "system",
                            error=f"{type(exc).__name__}: {exc}"[:300])

    def _acknowledge(self, number: str, submission: TakedownSubmission,
                     missing: Sequence[Missing]) -> None:
        email = submission.email.strip()
        if not email:
            return
        with self.db.transaction() as s:
            row = self._row(s, number)
            deadline = row.deadline_at
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
            if submission.csam:
                self._event(s, row, EventKind.ESCALATED, "system",
                            reason="reported as child sexual abuse material: needs a human "
                                   "review and a report to the authorities")
            if found.unknown:
                self._event(s, row, EventKind.NOT_FOUND, "system", unknown=found.unknown)
            if items:
                self._event(s, row, EventKind.LOCATED, "system",
                            items=[asdict(i) for i in items])
                for item in items:
                    self._queue(s, row, item.content_id, "remove", now)
                self._event(s, row, EventKind.REMOVAL_REQUESTED, "system", count=len(items))
        self._bank(number, found.bank)
        if not items:
            self._settle(number)  # nothing to remove: tell the requester now
        if callbacks_now:
            self.dispatch()

    def _locate(self, locator: ContentLocator, fps: Sequence[Fingerprint]) -> _Located:
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
            found.identified.add(record.content_id)
            hashes = content.stored_hashes(record.content_id)
            if hashes is None:
                continue
            found.bank.append(hashes)
            found.records[record.content_id] = record
            pdqs = [h for _, h in hashes.indexed()]
            self._add_copies(found, hashes.md5, from_hex(pdqs) if pdqs else None)
        for fp in fps:
            found.bank.append(entry_hashes(fp))
            self._add_copies(found, fp.hashes.md5, fp.query_array(), estimate=False)
        # Without the pixels (a moderator re-running a case), the images' stored hashes.
        stored = () if fps else zip(locator.image_md5s, locator.image_pdqs, strict=False)
        for md5, pdq in stored:
            found.bank.append(EntryHashes(md5=md5, pdq=pdq))
            self._add_copies(found, md5, from_hex([pdq]))
        for md5 in locator.md5_hashes:
            found.bank.append(EntryHashes(md5=md5.lower()))
            self._add_copies(found, md5.lower(), None)
        for pdq in locator.pdq_hashes:
            found.bank.append(EntryHashes(pdq=pdq.lower()))
            self._add_copies(found, None, from_hex([pdq.lower()]))
        return found

    def _add_copies(self, found: _Located, md5: str | None, pdqs: np.ndarray | None, *,
                    estimate: bool = True) -> None:
        # Hashes without pixels: estimate what the rotations/mirrors would hash to.
        queries = pdq_dihedral_estimates(pdqs) if estimate and pdqs is not None else pdqs
        for record in self.banks.content.copies(md5, queries):
            known = found.records.get(record.content_id)
            if known is None or (record.distance or 0) < (known.distance or 0):
                found.records[record.content_id] = record

    def _bank(self, number: str, hashes: Sequence[EntryHashes]) -> None:
        registry = self.banks.registry
        try:
            registry.get(TAKEDOWN_BANK)
        except BankError:
            with suppress(BankError):  # created concurrently
                registry.create(TAKEDOWN_BANK, "block", "ncii", actor="takedowns",
                                description="images removed on a victim's takedown request")
        entries: list[int] = []
        for h in hashes:
            try:
                entries.append(registry.add_entry(
                    TAKEDOWN_BANK, h, source="takedown", clause=CLAUSE, takedown_case=number,
                    details={"case": number}, actor="takedowns").id)
            except DuplicateEntry as dup:
                entries.append(dup.entry_id)
        if entries:
            with self.db.transaction() as s:
                self._event(s, self._row(s, number), EventKind.BANKED, "system",
                            bank=TAKEDOWN_BANK, entries=sorted(set(entries)))

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
        if self.callback is None:
            return 0
        with self._dispatch_lock:
            jobs = self._claim(limit)
            if not jobs:
                return 0
            with ThreadPoolExecutor(min(_SENDERS, len(jobs))) as pool:
                results = list(pool.map(lambda j: (j, self.callback.send(j[1])), jobs))
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
            row = s.get(TakedownCase, job.case_id)
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
        """Once no callback is pending: strike the uploaders, close the case and tell
        everyone (each at most once per case)."""
        with self.db.transaction() as s:
            row = self._row(s, number)
            pending = s.scalar(select(func.count()).select_from(RemovalJob).where(
                RemovalJob.case_id == row.id, RemovalJob.state == "pending"))
            if pending:
                return
            view = self._view(s, row)
            if view.status is not CaseStatus.LOCATED and view.located:
                return
            struck = {e.details.get("account") for e in view.events
                      if e.kind is EventKind.STRUCK}
            removed = set(view.removed)
            uploaders: dict[str, list[str]] = {}
            for item in view.located:
                if item.content_id in removed and item.account_id:
                    uploaders.setdefault(item.account_id, []).append(item.content_id)
            now = self._clock()
            for account, content_ids in uploaders.items():
                if account not in struck:
                    self._strike(s, row, account, content_ids, now)
            complete = bool(view.located) and not view.failed
            if complete:
                row.closed_at = now
                self._event(s, row, EventKind.CLOSED, "system", removed=len(removed))
            regime, requesters = row.regime, self._requesters(s, row)
            located = view.located
        if not located:
            for email in requesters:
                self._send(number, notices.nothing_found(number, Regime(regime), email))
            return
        for account, content_ids in uploaders.items():
            if account not in struck:
                self._send(number, notices.statement_of_reasons(
                    number, Regime(regime), account, content_ids, self._clause_title(),
                    automated=True, appeal_url=self.appeal_url, appeal_days=APPEAL_DAYS))
        if complete:
            copies = sum(1 for i in located if not i.identified and i.content_id in removed)
            for email in requesters:
                self._send(number, notices.content_removed(number, Regime(regime), email,
                                                           len(removed), copies))

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
        retry failed callbacks."""
        view = self.view(number)
        if view.status in {CaseStatus.INCOMPLETE, CaseStatus.REMOVED}:
            raise CaseStateError(f"case {view.number} is {view.status.value}; nothing to remove")
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            row.closed_at = None
            self._event(s, row, EventKind.RECEIVED, actor, automated=False,
                        note="removal confirmed by a moderator")
            submission = submission_from_dict(row.submission)
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
        reasons = [r.strip() for r in reasons if r.strip()]
        if not reasons:
            raise TakedownError("reasons_required", "a rejection needs at least one reason "
                                "the requester can read", "reasons")
        view = self.view(number)
        if view.removed and view.status is not CaseStatus.REVERSED:
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
        it was wrong): restore the items, withdraw the hashes, revoke the strikes."""
        if not reason.strip():
            raise TakedownError("reason_required", "a reversal needs a reason", "reason")
        view = self.view(number)
        if not view.removed:
            raise CaseStateError(f"case {view.number} has nothing removed to reverse")
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, view.number)
            for content_id in view.removed:
                self._queue(s, row, content_id, "restore", now)
            s.execute(update(Strike).where(Strike.takedown_case == row.number,
                                           Strike.revoked_at.is_(None)).values(revoked_at=now))
            row.closed_at = now
            self._event(s, row, EventKind.REVERSED, actor, automated=False, reason=reason)
            entries = [e for ev in view.events if ev.kind is EventKind.BANKED
                       for e in ev.details.get("entries", [])]
            requesters = self._requesters(s, row)
        for entry_id in entries:
            with suppress(BankError):  # already removed by an administrator
                self.banks.registry.set_entry_enabled(entry_id, False, actor=actor)
        regime = Regime(view.regime)
        for email in requesters:
            self._send(view.number, notices.removal_reversed(view.number, regime, email, reason))
        by_account: dict[str, list[str]] = {}
        for item in view.located:
            if item.content_id in view.removed and item.account_id:
                by_account.setdefault(item.account_id, []).append(item.content_id)
        for account, ids in by_account.items():
            self._send(view.number, notices.restored(view.number, account, ids, reason))
        self.dispatch()
        return self.view(view.number)

    def appeal(self, number: str, pin: str, reason: str) -> CaseView:
        """The requester contests a rejection."""
        case = self.status(number, pin)
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

    def status(self, number: str, pin: str) -> CaseView:
        """The requester's view, only with the right number and PIN. Wrong PINs count
        towards a lock; an unknown number and a wrong PIN give the same answer."""
        now = self._clock()
        with self.db.transaction() as s:
            row = s.scalars(select(TakedownCase).where(
                TakedownCase.number == normalise_case_number(number))).first()
            if row is None:
                pin_matches(pin, _dummy_pin_hash())  # same work as a real check
                raise CaseNotFound("no case with that number and PIN")
            if row.locked_until is not None and row.locked_until > now:
                raise CaseLocked(row.locked_until)
            if not pin_matches(pin.strip(), row.pin_hash):
                row.failed_pins += 1
                lock = lock_duration(row.failed_pins)
                if lock is not None:
                    row.locked_until = now + lock
                failed = True
            else:
                row.failed_pins, failed = 0, False
            number = row.number
        if failed:
            raise CaseNotFound("no case with that number and PIN")
        return self.view(number)

    def view(self, number: str) -> CaseView:
        with self.db.transaction() as s:
            row = self._row(s, number)
            if row.merged_into:  # a merged duplicate shows the case doing the work
                primary = self._view(s, self._row(s, row.merged_into))
                return replace(self._view(s, row), status=primary.status,
                               removed_at=primary.removed_at, located=primary.located,
                               removed=primary.removed, failed=primary.failed)
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
    sandbox), or raise ``TakedownError`` naming the field."""
    loc = submission.locator
    if len(images) > MAX_IMAGES:
        raise TakedownError("too_many_images", f"at most {MAX_IMAGES} images per request",
                            "images")
    count = len(loc.content_ids) + len(loc.urls) + len(loc.pdq_hashes) + len(loc.md5_hashes)
    if count > MAX_LOCATORS:
        raise TakedownError("too_many_items", f"at most {MAX_LOCATORS} links, ids and hashes "
                            "per request; send several requests", "content")
    for name, values, limit in (("urls", loc.urls, 2048), ("content_ids", loc.content_ids, 200)):
        for value in values:
            if not value.strip() or len(value) > limit:
                raise TakedownError("invalid_locator", f"each of {name} must be 1-{limit} "
                                    "characters", name)
    for name in ("statement", "requester_name", "signature", "other_contact", "email"):
        if len(getattr(submission, name)) > MAX_TEXT:
            raise TakedownError("text_too_long", f"{name} is longer than {MAX_TEXT} "
                                "characters", name)
    fps = []
    for index, data in enumerate(images):
        try:
            fps.append(fingerprint(data))
        except ImageRejected as exc:  # also a decode that overran or crashed: a clear 4xx
            raise TakedownError(exc.code, f"image {index + 1}: {exc}", f"images[{index}]",
                                too_large=exc.too_large) from exc
    return fps


def _with_image_hashes(submission: TakedownSubmission,
                       fps: Sequence[Fingerprint]) -> TakedownSubmission:
    """Uploaded images are kept only as hashes (the bytes are not stored)."""
    if not fps:
        return submission
    loc = submission.locator
    return replace(submission, locator=replace(
        loc, images=len(fps), image_md5s=tuple(fp.hashes.md5 for fp in fps),
        image_pdqs=tuple(fp.hashes.pdq.hex for fp in fps if fp.hashes.pdq)))


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
