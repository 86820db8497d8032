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
import secrets
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from consentry import audit
from consentry.banks.registry import BankError
from consentry.banks.services import BankServices, entry_hashes
from consentry.cases import notices
from consentry.cases.appeals import REQUESTER, open_appeal, user_of
from consentry.cases.callback import PlatformCallback
from consentry.cases.case import (
    CLOSED_STATUSES,
    REMOVAL_DEADLINE,
    CaseStatus,
    CaseView,
    Due,
    EventKind,
    LocatedItem,
    due_state,
    hash_pin,
    new_case_number,
    new_pin,
    normalise_case_number,
    pin_matches,
    well_formed_case_number,
)
from consentry.cases.holdings import (
    bank_for_case,
    claim_items,
    claimed_elsewhere,
    entries_to_release,
)
from consentry.cases.intake import (
    ContentLocator,
    Missing,
    Regime,
    TakedownSubmission,
    check_completeness,
)
from consentry.cases.locate import locate
from consentry.cases.log import CaseLog, CaseNotFound, CaseStateError
from consentry.cases.removal import RemovalQueue
from consentry.cases.senders import Sender, sender_from_env
from consentry.config import Settings
from consentry.enforcement.appeal_tokens import AppealRef, AppealSubject, AppealTokens
from consentry.errors import ConfigurationError, InvalidRequest
from consentry.evidence import Vault
from consentry.limits import Limits, RateLimit
from consentry.policy.document import Policy
from consentry.policy.routing import ItemKind, Queue, routed
from consentry.secret_key import derive_key, service_secret_key
from consentry.signals.hashing import Fingerprint
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import Sandbox, shared_sandbox
from consentry.store import Database
from consentry.store.models import CaseJob, CaseKey, Strike, TakedownCase
from consentry.store.review import close_item, open_item

__all__ = ["CaseNotFound", "CaseStateError", "SubmitResult", "TakedownService"]

_log = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_LOCATORS = 50
MAX_TEXT = 5000
INTAKE_LEASE: Final = timedelta(minutes=1)  # a worker that died holding intake: retaken
_INTAKE_ATTEMPTS: Final = 3

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


@dataclass(frozen=True)
class SubmitResult:
    case: CaseView
    pin: str  # shown once; only its scrypt hash is kept

    @property
    def missing(self) -> tuple[Missing, ...]:
        return self.case.missing


class TakedownService:
    def __init__(self, db: Database, banks: BankServices, policy: Policy, *,
                 sender: Sender, callback: PlatformCallback | None,
                 status_url: str = "/takedown/status", appeal_url: str = "/appeals",
                 clock: Callable[[], datetime] | None = None,
                 limits: Limits | None = None,
                 intake_lease: timedelta = INTAKE_LEASE,
                 sandbox: Sandbox | None = None,
                 decode_timeout_s: float | None = None,
                 appeal_tokens: AppealTokens | None = None,
                 vault: Vault | None = None) -> None:
        self.db = db
        audit.install()  # case events and removal attempts are links of the audit chain
        self._sandbox = sandbox  # None: the process-wide one
        self._decode_timeout_s = decode_timeout_s  # None: the sandbox's own
        self.banks = banks
        self.policy = policy
        self.status_url = status_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self.limits = limits or Limits(db, clock=self._clock)
        self.intake_lease = intake_lease
        self.log = CaseLog(db, sender, self._clock, vault)
        # Without the service key (tests, embedders), tokens verify only in this process.
        self.appeal_tokens = appeal_tokens or AppealTokens(secrets.token_bytes(32))
        self.removals = RemovalQueue(self.log, banks.content, policy, callback=callback,
                                     appeal_url=appeal_url, appeal_tokens=self.appeal_tokens,
                                     clock=self._clock, lease=intake_lease * 2)
        # Set where a job engine runs background work (consentry.jobs): asks a worker to
        # make the callbacks due instead of making them in this process.
        self.dispatch_hook: Callable[[], None] | None = None

    @classmethod
    def from_settings(cls, db: Database, banks: BankServices, policy: Policy,
                      settings: Settings, *, sandbox: Sandbox | None = None,
                      vault: Vault | None = None) -> TakedownService:
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
                   decode_timeout_s=settings.analysis_timeout_s,
                   appeal_tokens=AppealTokens(derive_key(service_secret_key(settings), "appeals")),
                   vault=vault)

    def now(self) -> datetime:
        return self._clock()

    @property
    def sandbox(self) -> Sandbox:
        """Where requesters' images are decoded."""
        return self._sandbox or shared_sandbox()

    def _fingerprint(self, data: bytes) -> Fingerprint:
        return self.sandbox.fingerprint(data, timeout_s=self._decode_timeout_s)

    @property
    def callback(self) -> PlatformCallback | None:
        return self.removals.callback

    def dispatch(self) -> int:
        """Make the removal callbacks that are due (see ``RemovalQueue.dispatch``)."""
        return self.removals.dispatch()

    def dispatch_soon(self) -> None:
        """After a request is answered: make the callbacks due here, or, where a job
        engine runs the background work (``dispatch_hook``), ask a worker to."""
        if self.dispatch_hook is not None:
            self.dispatch_hook()
        else:
            self.dispatch()

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
            primary = self.log.open_case_with(s, keys) if not missing else None
            row = TakedownCase(number=new_case_number(), pin_hash=hash_pin(pin),
                               regime=submission.regime.value, channel=channel,
                               received_at=now, deadline_at=now + REMOVAL_DEADLINE,
                               submission={},
                               merged_into=primary.number if primary else None)
            s.add(row)
            s.flush()
            self.log.store_request(s, row, submission)
            s.add_all(CaseKey(case_id=row.id, key=k) for k in keys)
            if missing:
                self.log.event(s, row, EventKind.INCOMPLETE, "requester",
                            missing=[asdict(m) for m in missing])
            else:
                self.log.event(s, row, EventKind.RECEIVED, "requester", channel=channel)
                if primary is None:
                    self._open_item(s, row, now)
            if primary is not None:
                self.log.event(s, row, EventKind.DUPLICATE_MERGED, "system", into=primary.number)
                self.log.event(s, primary, EventKind.DUPLICATE_MERGED, "system",
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
            row = self.log.row(s, case.number)
            self.log.store_request(s, row, submission)
            s.add_all(CaseKey(case_id=row.id, key=k) for k in _keys(submission.locator))
            self.log.event(s, row, EventKind.AMENDED, "requester")
            if missing:
                self.log.event(s, row, EventKind.INCOMPLETE, "requester",
                            missing=[asdict(m) for m in missing])
            else:
                self.log.event(s, row, EventKind.RECEIVED, "requester", channel=row.channel)
                self._open_item(s, row, now)
            job = self._intake_job(s, row, now)
        self._run_intake(job, fps, callbacks_now=callbacks_now)
        return SubmitResult(self.view(case.number), pin)

    def _open_item(self, s: Session, row: TakedownCase, now: datetime) -> None:
        """A complete case is a case worker's item until it closes, due at its deadline."""
        r = routed(ItemKind.TAKEDOWN_CASE, Queue.TAKEDOWNS)
        open_item(s, queue=r.queue, kind=r.kind, subject=row.number, account_id=None,
                  clause="II-3", restricted=False, has_media=False, priority=r.priority,
                  due_at=row.deadline_at, now=now)

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
            submission = self.log.request(s, row, f"intake of takedown case {number}")
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
            self.log.event(s, self.log.row(s, target), EventKind.PROCESSING_FAILED, "system",
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
            row = self.log.row(s, number)
            events = self.log.view(s, row).events
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
        # At least once, unlike the notices of a settled case: a requester whose
        # acknowledgement a crash cut off is told again (tests/e2e/test_server_faults.py).
        self.log.send(number, notice)

    # -- locate, bank, remove ---------------------------------------------------------

    def _process(self, number: str, submission: TakedownSubmission,
                 fps: Sequence[Fingerprint], *, callbacks_now: bool = True) -> None:
        found = locate(self.banks.content, submission.locator, fps)
        items = [LocatedItem(r.content_id, r.account_id, r.distance or 0,
                             r.content_id in found.identified)
                 for r in sorted(found.records.values(), key=lambda r: r.content_id)]
        now = self._clock()
        with self.db.transaction() as s:
            row = self.log.row(s, number)
            view = self.log.view(s, row)
            if submission.csam and not view.escalated:
                self.log.event(s, row, EventKind.ESCALATED, "system",
                               reason="reported as child sexual abuse material: needs a "
                                      "human review and a report to the authorities")
                r = routed(ItemKind.CSAM_NOTICE, Queue.CHILD_SAFETY, restricted=True)
                open_item(s, queue=r.queue, kind=r.kind, subject=row.number,
                          account_id=None, clause="CS-1", restricted=True, has_media=False,
                          priority=r.priority, due_at=now + r.sla, now=now)
            if found.unknown:
                self.log.event(s, row, EventKind.NOT_FOUND, "system", unknown=found.unknown)
            if found.already_removed:
                self.log.event(s, row, EventKind.ALREADY_REMOVED, "system",
                            content_ids=found.already_removed)
            if items:
                self.log.event(s, row, EventKind.LOCATED, "system",
                            items=[asdict(i) for i in items])
                for item in items:
                    self.removals.queue(s, row, item.content_id, "remove", now)
                self.log.event(s, row, EventKind.REMOVAL_REQUESTED, "system", count=len(items))
            claim_items(s, row, [i.content_id for i in items] + found.already_removed)
        bank_for_case(self.banks.registry, self.log, number, found.bank)
        if not items:
            self.removals.settle(number)  # nothing to remove: tell the requester now
        if callbacks_now:
            self.dispatch()

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
            row = self.log.row(s, view.number)
            submission = self.log.request(s, row, f"acting on takedown case {view.number}")
            if check_completeness(submission).missing:
                raise CaseStateError(f"case {view.number} is an incomplete request; it "
                                     "cannot be acted on until the requester completes it")
            row.closed_at = None
            self.log.event(s, row, EventKind.RECEIVED, actor, automated=False,
                        note="removal confirmed by a moderator")
            # The moderator's action supersedes intake still waiting for a retry.
            s.execute(update(CaseJob).where(CaseJob.case_id == row.id,
                                            CaseJob.state == "pending")
                      .values(state="done", finished_at=self._clock(), claimed_until=None))
        if content_ids:
            submission = _with_content_ids(submission, content_ids)
        self._process(view.number, submission, ())
        with self.db.transaction() as s:
            self.removals.requeue_failed(s, self.log.row(s, view.number), self._clock())
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
            row = self.log.row(s, view.number)
            self.removals.cancel_pending(s, row, "case rejected")
            row.closed_at = self._clock()
            close_item(s, kind=ItemKind.TAKEDOWN_CASE, subject=row.number,
                       outcome="rejected", now=row.closed_at, actor=actor)
            self.log.event(s, row, EventKind.REJECTED, actor, automated=False, reasons=reasons)
            requesters = self.log.requesters(s, row)
        for email in requesters:
            self.log.send(view.number, notices.request_rejected(view.number, Regime(view.regime),
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
            row = self.log.row(s, view.number)
            others = claimed_elsewhere(s, row, self.log.view)
            restore = [c for c in view.removed_here if c not in others]
            for content_id in restore:
                self.removals.queue(s, row, content_id, "restore", now)
            s.execute(update(Strike).where(Strike.takedown_case == row.number,
                                           Strike.revoked_at.is_(None)).values(revoked_at=now))
            row.closed_at = now
            close_item(s, kind=ItemKind.TAKEDOWN_CASE, subject=row.number,
                       outcome="reversed", now=now, actor=actor)
            self.log.event(s, row, EventKind.REVERSED, actor, automated=False, reason=reason,
                        restored=restore, kept=[c for c in view.removed_here if c in others])
            release = entries_to_release(s, row, self.log.view)
            requesters = self.log.requesters(s, row)
        for entry_id in release:
            with suppress(BankError):  # already removed by an administrator
                self.banks.registry.set_entry_enabled(entry_id, False, actor=actor)
        regime = Regime(view.regime)
        for email in requesters:
            self.log.send(view.number, notices.removal_reversed(view.number, regime, email, reason))
        by_account: dict[str, list[str]] = {}
        for item in view.located:
            if item.content_id in restore and item.account_id:
                by_account.setdefault(item.account_id, []).append(item.content_id)
        for account, ids in by_account.items():
            self.log.send(view.number, notices.restored(view.number, account, ids, reason))
        self.dispatch()
        return self.view(view.number)

    def appeal(self, number: str, pin: str, reason: str, *, client: str = _LOCAL) -> CaseView:
        """The requester contests a rejection."""
        case = self.status(number, pin, client=client)
        if case.status is not CaseStatus.REJECTED:
            raise CaseStateError(f"case {case.number} is {case.status.value}; only a "
                                 "rejected request can be appealed")
        now = self._clock()
        with self.db.transaction() as s:
            row = self.log.row(s, case.number)
            rejected_by = next((e.actor for e in reversed(case.events)
                                if e.kind is EventKind.REJECTED), "")
            # A person who did not reject it looks again (an appeal item, never the
            # automation).
            open_appeal(s, AppealRef(AppealSubject.TAKEDOWN, f"{case.number}:{REQUESTER}"),
                        account=None, clause="II-3", known_match=False, has_media=False,
                        reason=_appeal_reason(reason),
                        contact=self.log.requester_email(s, row) or None,
                        excluded_user_id=user_of(rejected_by), now=now,
                        fields=self.log.vault.fields if self.log.vault else None)
            row.closed_at = None
            self.log.event(s, row, EventKind.APPEALED, "requester", automated=False,
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
            row = self.log.row(s, number)
            if row.merged_into:  # a merged duplicate shows the case doing the work
                primary = self.log.view(s, self.log.row(s, row.merged_into))
                return replace(self.log.view(s, row), status=primary.status,
                               removed_at=primary.removed_at, located=primary.located,
                               removed=primary.removed, failed=primary.failed,
                               already_removed=primary.already_removed)
            return self.log.view(s, row)

    def list_cases(self, due: Due = Due.OPEN) -> list[CaseView]:
        """Open cases (not merged), soonest deadline first; ``overdue`` or ``at_risk``
        narrows the list."""
        now = self._clock()
        with self.db.transaction() as s:
            rows = s.scalars(select(TakedownCase).where(
                TakedownCase.closed_at.is_(None), TakedownCase.merged_into.is_(None))
                .order_by(TakedownCase.deadline_at)).all()
            views = [self.log.view(s, r) for r in rows]
        # Escalated cases (reported CSAM) first, then by deadline.
        views = sorted((v for v in views if v.status not in CLOSED_STATUSES),
                       key=lambda v: not v.escalated)
        if due is Due.OPEN:
            return views
        if due is Due.AT_RISK:
            return [v for v in views if due_state(v.deadline_at, now) is Due.AT_RISK]
        return [v for v in views if due_state(v.deadline_at, now) is Due.OVERDUE]

    # -- shared steps -------------------------------------------------------------------


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



def _appeal_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_TEXT:
        raise InvalidRequest("invalid_reason", f"say in 1-{MAX_TEXT} characters why the "
                             "request should be looked at again", field="reason")
    return reason
