"""People's decisions on review items, and everything a decision sets in motion.

Every decision names a policy clause and gives a rationale of a few words at least, and is
an event with its author. ``uphold`` keeps (or makes) the restriction the item is about,
``overturn`` undoes it, ``escalate`` hands the item to child safety or to a lead. Up to
500 items can be decided at once; each is decided on its own, so one that cannot be (held
by someone else, already decided) is reported and the rest go on.

Overturning a refusal revokes its strike, recomputes the account's suspension, restores
the content through the platform callback, disables any bank entry it created and tells
the user; an upheld appeal does the same. What each kind of item needs is in
``_EFFECTS``, one function per kind and decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from consentry.banks.registry import BankError, DuplicateEntry
from consentry.banks.services import BankServices, entry_hashes
from consentry.cases import notices
from consentry.cases.case import EventKind
from consentry.cases.log import CaseStateError, record_notice
from consentry.cases.review import ItemGone, Reviewer, ReviewQueues
from consentry.cases.senders import Sender
from consentry.cases.takedowns import TakedownService
from consentry.enforcement.appeal_tokens import AppealRef, AppealSubject, AppealTokens
from consentry.enforcement.ledger import (
    ensure_account,
    load_standing,
    record_consequence,
    undo_check,
)
from consentry.enforcement.standing import consequence_of
from consentry.errors import ConsentryError, InvalidRequest
from consentry.evidence.fields import Column
from consentry.likeness.registry import LikenessRegistry
from consentry.policy.document import Policy
from consentry.policy.evaluate import Ruling
from consentry.policy.routing import CHILD_SAFETY_CLAUSES, Queue
from consentry.signals.hashing import Fingerprint
from consentry.signals.sandbox import Sandbox, shared_sandbox
from consentry.store.models import (
    Appeal,
    BankEntry,
    CheckRecord,
    ReviewItem,
    Suspension,
)

_log = logging.getLogger(__name__)

MAX_BULK: Final = 500
MIN_RATIONALE_WORDS: Final = 3
ALLOWED_DISPUTES: Final = "disputed-matches"  # allow bank of images wrongly matched
_ESCALATE_TO: Final = frozenset({Queue.CHILD_SAFETY, Queue.LEADS})


class Decision(StrEnum):
    UPHOLD = "uphold"  # the restriction stands (or is made, for a held request)
    OVERTURN = "overturn"  # the restriction is undone (an appeal granted)
    ESCALATE = "escalate"  # to child safety or to a lead


@dataclass(frozen=True)
class Outcome:
    item_id: int
    decided: bool
    problem: str | None = None


@dataclass
class _Plan:
    """What one decision does once recorded: database work in the decision's own
    transaction (``now``), the rest after it commits (``after``)."""

    now: list[Callable[[Session], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    before: list[Callable[[], None]] = field(default_factory=list)  # may refuse (state)


class Decisions:
    def __init__(self, queues: ReviewQueues, takedowns: TakedownService, banks: BankServices,
                 policy: Policy, *, sender: Sender, appeal_tokens: AppealTokens,
                 public_url: str, sandbox: Sandbox | None = None,
                 likeness: LikenessRegistry | None = None) -> None:
        self.queues = queues
        self.db = queues.db
        self.takedowns = takedowns
        self.banks = banks
        self.policy = policy
        self.sender = sender
        self.tokens = appeal_tokens
        self.public_url = public_url
        self._sandbox = sandbox
        self._likeness = likeness

    def decide(self, reviewer: Reviewer, item_ids: Sequence[int], decision: Decision | str,
               clause: str, rationale: str, *,
               escalate_to: Queue | str | None = None) -> list[Outcome]:
        """Decide items, each on its own; bad input (no clause, a rationale of fewer
        than three words, more than 500 items) refuses the whole call."""
        decision = _decision(decision)
        clause, rationale = self._validated(clause, rationale)
        ids = list(dict.fromkeys(item_ids))
        if not 1 <= len(ids) <= MAX_BULK:
            raise InvalidRequest("too_many_items", f"decide 1 to {MAX_BULK} items at once, "
                                 f"not {len(ids)}", field="items")
        target = _target(decision, escalate_to)
        return [self._decide_one(reviewer, item_id, decision, clause, rationale, target)
                for item_id in ids]

    # -- one item ---------------------------------------------------------------------

    def _decide_one(self, reviewer: Reviewer, item_id: int, decision: Decision, clause: str,
                    rationale: str, target: Queue | None) -> Outcome:
        now = self.queues.now()
        try:
            with self.db.transaction() as s:
                row = self.queues.item_row(s, reviewer, item_id)
                self._may_decide(reviewer, row, decision, clause, now)
                plan = self._plan(s, row, decision, clause, rationale, reviewer)
            for step in plan.before:  # actions on a takedown case, which check its state
                step()
            with self.db.transaction() as s:
                row = self.queues.item_row(s, reviewer, item_id, lock=True)
                if not (plan.before and row.status == "closed"):  # else: closed by our act
                    self._may_decide(reviewer, row, decision, clause, now)
                self.queues.event(s, row.id, "decided", reviewer, decision=decision.value,
                                  clause=clause, rationale=rationale,
                                  **({"to": target.value} if target else {}))
                if decision is Decision.ESCALATE:
                    assert target is not None
                    row.queue, row.restricted = target.value, (
                        row.restricted or target is Queue.CHILD_SAFETY)
                    row.claimed_by, row.claimed_until = None, None
                    return Outcome(item_id, True)
                row.status, row.outcome, row.closed_at = "closed", decision.value, now
                row.clause = clause
                row.claimed_by, row.claimed_until = None, None
                for step_now in plan.now:
                    step_now(s)
        except ItemGone:
            return Outcome(item_id, False, "no such item")
        except ConsentryError as exc:
            return Outcome(item_id, False, str(exc))
        for later in plan.after:
            try:
                later()
            except Exception:  # noqa: BLE001 - the decision stands; the follow-up is logged
                _log.exception("review item %d: a follow-up of the decision failed", item_id)
        return Outcome(item_id, True)

    def _may_decide(self, reviewer: Reviewer, row: ReviewItem, decision: Decision,
                    clause: str, now: datetime) -> None:
        if not reviewer.decides:
            raise CaseStateError("your role does not decide items (read-only)")
        if row.status != "open":
            raise CaseStateError(f"item {row.id} is already decided")
        if row.claimed_by not in (None, reviewer.id) and row.claimed_until is not None \
                and row.claimed_until > now:
            raise CaseStateError(f"item {row.id} is being reviewed by someone else")
        if row.excluded_user_id == reviewer.id:
            raise CaseStateError("you made the decision this appeal contests; another "
                                 "reviewer must decide it")
        if (decision is not Decision.ESCALATE and clause in CHILD_SAFETY_CLAUSES
                and not reviewer.sees_restricted):
            raise CaseStateError(f"only child-safety reviewers decide under {clause}: "
                                 "escalate it to child safety")

    def _validated(self, clause: str, rationale: str) -> tuple[str, str]:
        clause = (clause or "").strip().upper()
        if clause not in self.policy.clauses:
            raise InvalidRequest("unknown_clause", f"choose the policy clause the decision "
                                 f"rests on, one of {', '.join(self.policy.clauses)}",
                                 field="clause")
        rationale = " ".join((rationale or "").split())
        if len(rationale.split()) < MIN_RATIONALE_WORDS or len(rationale) < 15:
            raise InvalidRequest("rationale_too_short", "say why in a few words (at least "
                                 f"{MIN_RATIONALE_WORDS} words): the user and the next "
                                 "reviewer read it", field="rationale")
        if len(rationale) > 2000:
            raise InvalidRequest("rationale_too_long", "keep the rationale under 2,000 "
                                 "characters", field="rationale")
        return clause, rationale

    # -- what a decision does ---------------------------------------------------------

    def _plan(self, s: Session, row: ReviewItem, decision: Decision, clause: str,
              rationale: str, reviewer: Reviewer) -> _Plan:
        plan = _Plan()
        if decision is Decision.ESCALATE:
            return plan
        effect = _EFFECTS.get((row.kind, decision))
        if effect is not None:
            effect(self, s, row, clause, rationale, reviewer, plan)
        return plan

    # held requests: the person decides what the gate could not
    def _refuse_held(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                     reviewer: Reviewer, plan: _Plan) -> None:
        check = s.get_one(CheckRecord, row.subject)
        item_id = row.id

        def strike(ss: Session) -> None:
            if check.account_id:
                now = self.queues.now()
                ensure_account(ss, check.account_id, now, lock=True)
                before = load_standing(ss, check.account_id, now)
                consequence = consequence_of(Ruling("block", clause, ()), before,
                                             self.policy, now)
                if consequence.pending_review:
                    # A child-safety reviewer decided it: nothing left to confirm.
                    consequence = replace(consequence, pending_review=False, permanent=True)
                record_consequence(ss, check.account_id, clause, consequence, check.id, now)
            self._callback(ss, item_id, check, "remove")

        plan.now.append(strike)
        plan.after.append(lambda: self._tell(item_id, check, refused=True, clause=clause,
                                             rationale=rationale))

    def _allow_held(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                    reviewer: Reviewer, plan: _Plan) -> None:
        check = s.get_one(CheckRecord, row.subject)
        item_id = row.id
        plan.now.append(lambda ss: self._callback(ss, item_id, check, "restore"))
        plan.after.append(lambda: self._tell(item_id, check, refused=False, clause=clause,
                                             rationale=rationale))

    # refusals by image analysis alone
    def _confirm_refusal(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                         reviewer: Reviewer, plan: _Plan) -> None:
        check_id = row.subject
        plan.after.append(lambda: self._bank_refusal(check_id, clause))

    def _overturn_refusal(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                          reviewer: Reviewer, plan: _Plan) -> None:
        check = s.get_one(CheckRecord, row.subject)
        item_id = row.id
        plan.now.append(lambda ss: self._undo(ss, item_id, check))
        plan.after.append(lambda: self._unbank_refusal(check.id, reviewer))
        plan.after.append(lambda: self._tell(item_id, check, refused=False, clause=clause,
                                             rationale=rationale))

    # CS-1 suspensions awaiting confirmation
    def _confirm_cs1(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                     reviewer: Reviewer, plan: _Plan) -> None:
        check_id = row.subject

        def confirm(ss: Session) -> None:
            for suspension in ss.scalars(select(Suspension).where(
                    Suspension.check_id == check_id, Suspension.pending_review.is_(True),
                    Suspension.lifted_at.is_(None))):
                suspension.pending_review = False  # now permanent: a person confirmed it

        plan.now.append(confirm)

    def _lift_cs1(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                  reviewer: Reviewer, plan: _Plan) -> None:
        check = s.get_one(CheckRecord, row.subject)
        item_id = row.id
        plan.now.append(lambda ss: self._undo(ss, item_id, check, restore=False))
        if check.account_id:
            account = check.account_id
            plan.after.append(lambda: self._send(item_id, notices.suspension_lifted(
                self._ref(item_id), account, rationale)))

    # takedown cases
    def _remove_case(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                     reviewer: Reviewer, plan: _Plan) -> None:
        number = row.subject
        plan.before.append(lambda: self._remove_if_open(number, reviewer))

    def _refuse_case(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                     reviewer: Reviewer, plan: _Plan) -> None:
        number = row.subject
        plan.before.append(lambda: self._undo_case(number, rationale, reviewer))

    def _review_notice(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                       reviewer: Reviewer, plan: _Plan, *, confirmed: bool) -> None:
        number = row.subject

        def record(ss: Session) -> None:
            log = self.takedowns.log
            log.event(ss, log.row(ss, number), EventKind.ESCALATION_REVIEWED,
                      _actor(reviewer), automated=False, confirmed=confirmed, clause=clause,
                      rationale=rationale)

        plan.now.append(record)

    # likeness registry: a face enrolled again under another account
    def _settle_likeness(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                         reviewer: Reviewer, plan: _Plan, *, same_person: bool) -> None:
        if self._likeness is None:
            raise InvalidRequest("likeness_unavailable", "the likeness registry is not "
                                 "available to this console", field="decision")
        registry, enrolment = self._likeness, row.subject
        plan.before.append(lambda: registry.settle_held(
            enrolment, same_person=same_person, actor=_actor(reviewer)))

    # appeals and disputes
    def _grant_appeal(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                      reviewer: Reviewer, plan: _Plan) -> None:
        appeal = self._appeal(s, row)
        item_id = row.id
        if appeal.subject_kind == AppealSubject.CHECK:
            check = s.get_one(CheckRecord, appeal.subject)
            plan.now.append(lambda ss: self._undo(ss, item_id, check))
            plan.after.append(lambda: self._unbank_refusal(check.id, reviewer))
            if row.kind == "hash_dispute":
                plan.after.append(lambda: self._allow_disputed(check.id, reviewer, rationale))
        else:
            number, who = appeal.subject.split(":", 1)
            if who == "requester":  # a requester contests a rejection: act on the request
                plan.before.append(lambda: self._remove_if_open(number, reviewer))
            else:
                plan.before.append(lambda: self._undo_case(number, rationale, reviewer))
        self._tell_appellant(s, appeal, item_id, plan, granted=True, rationale=rationale)

    def _deny_appeal(self, s: Session, row: ReviewItem, clause: str, rationale: str,
                     reviewer: Reviewer, plan: _Plan) -> None:
        appeal = self._appeal(s, row)
        if appeal.subject_kind == AppealSubject.TAKEDOWN:
            number, who = appeal.subject.split(":", 1)
            if who == "requester":  # the rejection stands again
                def reject_again() -> None:
                    self.takedowns.reject(number, [rationale], actor=_actor(reviewer))

                plan.before.append(reject_again)
                return  # the rejection notice tells the requester
        self._tell_appellant(s, appeal, row.id, plan, granted=False, rationale=rationale)

    # -- shared steps -----------------------------------------------------------------

    def _undo(self, s: Session, item_id: int, check: CheckRecord, *,
              restore: bool = True) -> None:
        """Undo what a refused check cost its account, and give the content back."""
        if check.account_id:
            undo_check(s, check.account_id, check.id, self.queues.now(), self.policy)
        if restore:
            self._callback(s, item_id, check, "restore")

    def _callback(self, s: Session, item_id: int, check: CheckRecord, action: str) -> None:
        """Tell the platform (a held generation is named by its check id)."""
        if self.takedowns.callback is None:
            return
        self.takedowns.removals.queue_for_review(s, item_id, check.content_id or check.id,
                                                 action, self.queues.now())

    def _remove_if_open(self, number: str, reviewer: Reviewer) -> None:
        view = self.takedowns.view(number)
        if view.status.value in ("removed",):
            return  # the automation already did what the reviewer confirms
        self.takedowns.remove(number, actor=_actor(reviewer))

    def _undo_case(self, number: str, rationale: str, reviewer: Reviewer) -> None:
        view = self.takedowns.view(number)
        if view.removed_here or view.status.value == "removed":
            self.takedowns.reverse(number, rationale, actor=_actor(reviewer))
        elif view.status.value not in ("rejected", "reversed"):
            self.takedowns.reject(number, [rationale], actor=_actor(reviewer))

    def _bank_refusal(self, check_id: str, clause: str) -> None:
        """Block once, block everywhere: the confirmed refusal's image into own-refusals."""
        fingerprint = self._fingerprint(check_id)
        if fingerprint is not None:
            self.banks.bank_refusal(fingerprint, clause, check_id=check_id, actor="review")

    def _unbank_refusal(self, check_id: str, reviewer: Reviewer) -> None:
        """Disable the own-refusals entries this check created."""
        with self.db.transaction() as s:
            digests = s.get_one(CheckRecord, check_id).image_sha256 or []
            entries = [e.id for e in s.scalars(select(BankEntry).where(
                BankEntry.source.in_(["gate", "review"]), BankEntry.sha256.in_(digests),
                BankEntry.removed_at.is_(None), BankEntry.disabled_at.is_(None)))
                if (e.details or {}).get("check") == check_id]
        for entry_id in entries:
            self.banks.registry.set_entry_enabled(entry_id, False, actor=_actor(reviewer))

    def _allow_disputed(self, check_id: str, reviewer: Reviewer, rationale: str) -> None:
        """A dispute upheld: the entries that matched this very file (an identical MD5) are
        wrong and are disabled; and the image goes into an allow bank, so that entries it
        merely resembles (a PDQ collision) no longer match it."""
        with self.db.transaction() as s:
            reasons = s.get_one(CheckRecord, check_id).verdict.get("reasons", [])
        for reason in reasons:
            if reason.get("code") == "hash_match" and reason.get("rule") == "md5" \
                    and reason.get("entry"):
                with suppress(BankError):  # removed meanwhile
                    self.banks.registry.set_entry_enabled(
                        int(reason["entry"]), False, actor=_actor(reviewer),
                        reason=f"dispute upheld: {rationale}"[:500])
        fingerprint = self._fingerprint(check_id)
        if fingerprint is None:
            return  # no bytes kept (KM-1): nothing to add
        registry = self.banks.registry
        try:
            registry.get(ALLOWED_DISPUTES)
        except BankError:
            with suppress(BankError):  # created concurrently
                registry.create(ALLOWED_DISPUTES, "allow", "benign", actor=_actor(reviewer),
                                description="images a reviewer found wrongly matched")
        with suppress(DuplicateEntry):  # already allowed
            registry.add_entry(ALLOWED_DISPUTES, entry_hashes(fingerprint), source="review",
                               details={"check": check_id}, actor=_actor(reviewer))

    def _fingerprint(self, check_id: str) -> Fingerprint | None:
        """The refused image's hashes, from the evidence kept (none for KM-1)."""
        data = self.queues.image(check_id, 0, why="hashing the refused image for the "
                                 "bank after a decision")
        if data is None:
            return None
        return (self._sandbox or shared_sandbox()).fingerprint(data)

    def _appeal(self, s: Session, row: ReviewItem) -> Appeal:
        appeal = s.scalars(select(Appeal).where(Appeal.review_item_id == row.id)).first()
        if appeal is None:
            raise CaseStateError(f"item {row.id} has no appeal on record")
        return appeal

    def _tell(self, item_id: int, check: CheckRecord, *, refused: bool, clause: str,
              rationale: str) -> None:
        if not check.account_id:
            return
        token = self.tokens.issue(AppealRef(AppealSubject.CHECK, check.id))
        self._send(item_id, notices.review_outcome(
            self._ref(item_id), check.account_id, refused=refused,
            clause=f"{clause}: {self.policy.clause(clause).title}", rationale=rationale,
            appeal_url=f"{self.public_url}/appeals?token={token}" if refused else None))

    def _tell_appellant(self, s: Session, appeal: Appeal, item_id: int, plan: _Plan, *,
                        granted: bool, rationale: str) -> None:
        vault = self.takedowns.log.vault
        contact = (vault.open_field(s, appeal.contact, Column.APPEAL_CONTACT, actor="system",
                                    subject=f"appeal:{appeal.id}")
                   if vault is not None else appeal.contact)
        recipient = contact or (notices.account_recipient(appeal.account_id)
                                if appeal.account_id else None)
        if recipient is None:
            return
        plan.after.append(lambda: self._send(item_id, notices.appeal_outcome(
            self._ref(item_id), recipient, granted=granted, rationale=rationale)))

    def _send(self, item_id: int, notice: notices.Notice) -> None:
        delivery = self.sender.send(notice)
        with self.db.transaction() as s:
            vault = self.takedowns.log.vault
            record_notice(s, notice, delivery, self.queues.now(),
                          vault.fields if vault else None, review_item_id=item_id)
            self.queues.event(s, item_id, "notified", None, notice=notice.kind,
                              delivered=delivery.delivered)

    @staticmethod
    def _ref(item_id: int) -> str:
        return f"RV-{item_id}"


Effect = Callable[[Decisions, Session, ReviewItem, str, str, Reviewer, _Plan], None]

_EFFECTS: Final[dict[tuple[str, Decision], Effect]] = {
    ("review_verdict", Decision.UPHOLD): Decisions._refuse_held,
    ("review_verdict", Decision.OVERTURN): Decisions._allow_held,
    ("image_refusal", Decision.UPHOLD): Decisions._confirm_refusal,
    ("image_refusal", Decision.OVERTURN): Decisions._overturn_refusal,
    ("cs1_confirmation", Decision.UPHOLD): Decisions._confirm_cs1,
    ("cs1_confirmation", Decision.OVERTURN): Decisions._lift_cs1,
    ("takedown_case", Decision.UPHOLD): Decisions._remove_case,
    ("takedown_case", Decision.OVERTURN): Decisions._refuse_case,
    ("csam_notice", Decision.UPHOLD): lambda d, s, r, c, ra, rv, p: d._review_notice(
        s, r, c, ra, rv, p, confirmed=True),
    ("csam_notice", Decision.OVERTURN): lambda d, s, r, c, ra, rv, p: d._review_notice(
        s, r, c, ra, rv, p, confirmed=False),
    # An appeal contests a restriction: overturning the restriction grants the appeal.
    ("appeal", Decision.OVERTURN): Decisions._grant_appeal,
    ("appeal", Decision.UPHOLD): Decisions._deny_appeal,
    ("hash_dispute", Decision.OVERTURN): Decisions._grant_appeal,
    ("hash_dispute", Decision.UPHOLD): Decisions._deny_appeal,
    # Uphold: the enrolment already on record stands. Overturn: this account is the
    # person; the earlier enrolment is withdrawn and the person enrols again.
    ("likeness_duplicate", Decision.UPHOLD): lambda d, s, r, c, ra, rv, p: d._settle_likeness(
        s, r, c, ra, rv, p, same_person=False),
    ("likeness_duplicate", Decision.OVERTURN): lambda d, s, r, c, ra, rv, p: d._settle_likeness(
        s, r, c, ra, rv, p, same_person=True),
}


def _decision(value: Decision | str) -> Decision:
    try:
        return Decision(value)
    except ValueError:
        raise InvalidRequest("unknown_decision", "decide uphold, overturn or escalate",
                             field="decision") from None


def _target(decision: Decision, escalate_to: Queue | str | None) -> Queue | None:
    if decision is not Decision.ESCALATE:
        return None
    try:
        target = Queue(escalate_to or "")
    except ValueError:
        target = None
    if target not in _ESCALATE_TO:
        raise InvalidRequest("unknown_escalation", "escalate to child_safety or leads",
                             field="escalate_to")
    return target


def _actor(reviewer: Reviewer) -> str:
    """How a person is named on takedown case events (the console's reviewers)."""
    return f"user:{reviewer.id}:{reviewer.name}"

