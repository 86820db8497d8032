"""Appeals: every restriction can be contested once, within 14 days, by the person it
affects, with the token from its statement of reasons (no account with us needed). An
appeal becomes a review item for a person who did not make the decision, never for the
automation (DSA Art. 20; POLICY.md).

What can be appealed: a refused check (generation, upload, output, with the strike and
suspension it brought), an uploader's content removed by a takedown case (with its
strike), and a requester's rejected takedown request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry.cases.case import EventKind
from consentry.enforcement.appeal_tokens import AppealRef, AppealSubject, AppealTokens
from consentry.errors import Conflict, InvalidRequest, NotFound
from consentry.evidence.fields import Column, SealedFields
from consentry.policy.document import Policy
from consentry.policy.routing import route_appeal
from consentry.store import Database
from consentry.store.models import (
    Appeal,
    CaseEvent,
    CheckMedia,
    CheckRecord,
    ReviewEvent,
    ReviewItem,
    TakedownCase,
)
from consentry.store.review import open_item

MIN_REASON: Final = 10
MAX_REASON: Final = 5000
REQUESTER: Final = "requester"
_NOT_APPEALABLE: Final = frozenset({"FC-1", "EN-1"})  # retry / the suspension's own


class AlreadyAppealed(Conflict):
    code = "already_appealed"


class AppealWindowClosed(Conflict):
    code = "appeal_window_closed"


@dataclass(frozen=True)
class FiledAppeal:
    reference: str  # what the appellant quotes: "RV-<item id>"
    item_id: int
    queue: str
    filed_at: datetime


class AppealDesk:
    def __init__(self, db: Database, tokens: AppealTokens, policy: Policy, *,
                 clock: Callable[[], datetime] | None = None,
                 fields: SealedFields | None = None) -> None:
        self.db = db
        self.fields = fields  # the appellant's words and contact are kept sealed
        self.tokens = tokens
        self.window = timedelta(days=policy.enforcement.appeal_window_days)
        self._clock = clock or (lambda: datetime.now(UTC))

    def file(self, token: str, reason: str, contact: str | None = None) -> FiledAppeal:
        """File the appeal a token allows. Bad input: 422; a token already used, or past
        its 14 days: 409; a token for nothing we hold: 404."""
        reason = _reason(reason)
        contact = _contact(contact)
        ref = self.tokens.verify(token or "")
        if ref is None:
            raise InvalidRequest("invalid_token", "this appeal token is not valid: copy it "
                                 "whole from the message you received", field="token")
        now = self._clock()
        with self.db.transaction() as s:
            if ref.kind is AppealSubject.CHECK:
                account, clause, known, media, decided_at, excluded = _check_subject(s, ref)
            else:
                account, clause, known, media, decided_at, excluded = _takedown_subject(s, ref)
            if now > decided_at + self.window:
                raise AppealWindowClosed(f"appeals must be made within "
                                         f"{self.window.days} days of the decision")
            return open_appeal(s, ref, account=account, clause=clause, known_match=known,
                               has_media=media, reason=reason, contact=contact,
                               excluded_user_id=excluded, now=now, fields=self.fields)


def open_appeal(s: Session, ref: AppealRef, *, account: str | None, clause: str | None,
                known_match: bool, has_media: bool, reason: str, contact: str | None,
                excluded_user_id: int | None, now: datetime,
                fields: SealedFields | None) -> FiledAppeal:
    """Record an appeal and open its review item, in the caller's transaction. With
    ``fields``, the reason and contact are sealed (personal data)."""
    exists = s.scalars(select(Appeal.id).where(Appeal.subject_kind == ref.kind.value,
                                               Appeal.subject == ref.subject)).first()
    if exists is not None:
        raise AlreadyAppealed("this decision has already been appealed; you will hear the "
                              "outcome from us")
    routing = route_appeal(clause, known_match=known_match, has_media=has_media)
    if fields is not None:
        reason = fields.seal(reason, Column.APPEAL_REASON)
        contact = fields.seal_optional(contact, Column.APPEAL_CONTACT)
    appeal = Appeal(subject_kind=ref.kind.value, subject=ref.subject, account_id=account,
                    reason=reason, contact=contact, filed_at=now)
    s.add(appeal)
    try:
        s.flush()
    except IntegrityError as exc:  # filed concurrently
        raise AlreadyAppealed("this decision has already been appealed") from exc
    item_id = open_item(s, queue=routing.queue, kind=routing.kind,
                        subject=f"{ref.kind.value}:{ref.subject}", account_id=account,
                        clause=clause, restricted=routing.restricted,
                        has_media=routing.has_media, priority=routing.priority,
                        due_at=now + routing.sla, now=now,
                        excluded_user_id=excluded_user_id, details={"appeal": appeal.id})
    appeal.review_item_id = item_id
    return FiledAppeal(f"RV-{item_id}", item_id, routing.queue.value, now)


def user_of(actor: str) -> int | None:
    """The console user an actor string names (``user:<id>:<name>``), if any."""
    parts = actor.split(":")
    if len(parts) >= 2 and parts[0] == "user" and parts[1].isdigit():
        return int(parts[1])
    return None


def _check_subject(s: Session, ref: AppealRef) -> tuple[str | None, str, bool, bool,
                                                         datetime, int | None]:
    check = s.get(CheckRecord, ref.subject)
    if check is None:
        raise NotFound("no decision for this token", code="not_found")
    clause = check.clause
    if check.decision == "review":  # held: a restriction only once a person refused it
        refused = s.scalars(select(ReviewItem).where(
            ReviewItem.kind == "review_verdict", ReviewItem.subject == check.id,
            ReviewItem.outcome == "uphold")).first()
        clause = refused.clause if refused is not None and refused.clause else ""
    elif check.decision != "block":
        clause = ""
    if not clause or clause in _NOT_APPEALABLE:
        raise Conflict("this decision restricts nothing that can be appealed (ask again, "
                       "or appeal the decision that suspended the account)",
                       code="not_appealable")
    known = any(r.get("code") == "hash_match" for r in check.verdict.get("reasons", []))
    media = s.scalar(select(CheckMedia.check_id).where(
        CheckMedia.check_id == check.id).limit(1)) is not None
    # Whoever decided it by hand (a held request refused) may not hear its appeal.
    decider = s.scalar(select(ReviewEvent.actor_id).join(
        ReviewItem, ReviewItem.id == ReviewEvent.item_id).where(
        ReviewItem.subject == check.id, ReviewEvent.kind == "decided")
        .order_by(ReviewEvent.id.desc()).limit(1))
    return check.account_id, clause, known, media, check.created_at, decider


def _takedown_subject(s: Session, ref: AppealRef) -> tuple[str | None, str, bool, bool,
                                                            datetime, int | None]:
    number, _, account = ref.subject.partition(":")
    case = s.scalars(select(TakedownCase).where(TakedownCase.number == number)).first()
    if case is None or not account:
        raise NotFound("no decision for this token", code="not_found")
    struck = s.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.kind == EventKind.STRUCK.value)
        .order_by(CaseEvent.id)).all()
    mine = [e for e in struck if (e.details or {}).get("account") == account]
    if not mine:
        raise NotFound("no decision for this token", code="not_found")
    return account, "II-3", False, False, mine[0].at, None


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise InvalidRequest("reason_too_short", "tell us in a sentence why the decision is "
                             "wrong", field="reason")
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidRequest("invalid_reason", f"the reason must be at most {MAX_REASON} "
                             "characters of text", field="reason")
    return reason


def _contact(contact: str | None) -> str | None:
    contact = (contact or "").strip() or None
    if contact is not None and (len(contact) > 320 or "@" not in contact
                                or any(c.isspace() for c in contact)):
        raise InvalidRequest("invalid_contact", "give an email address to hear the outcome "
                             "(or leave it empty to hear through the platform)",
                             field="contact")
    return contact
