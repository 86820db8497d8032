"""The review queues: what people are shown, who may take what, and the record of every
look. Items are opened where decisions are made (the gate, the takedown service, appeals:
``store.review.open_item``); here they are listed, claimed under a lock that runs out
after 10 minutes, viewed and revealed. Deciding them is ``cases.decisions``.

Rules enforced here, whatever page or API asks:
- restricted items (CS-1, KM-1, CSAM notices) exist only for child-safety reviewers and
  admins: for anyone else they are not found;
- an item is held by at most one person at a time (claimed with SKIP LOCKED on
  PostgreSQL, serialised writers on SQLite);
- an appeal is never offered to whoever made the decision it contests;
- every reveal of media is an event; past the shift's limit only non-media work is
  offered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session

from consentry import audit
from consentry.errors import Conflict, NotFound, TooManyAttempts
from consentry.evidence import Vault
from consentry.evidence.fields import Column, is_sealed, with_quotes
from consentry.people.roles import DECIDE, LEAD_DASHBOARDS, SEE_RESTRICTED
from consentry.policy.routing import NCII_CLAUSES, Queue
from consentry.store import Database
from consentry.store.models import (
    Appeal,
    CheckMedia,
    CheckRecord,
    ReviewEvent,
    ReviewItem,
    Strike,
    Suspension,
)

CLAIM: Final = timedelta(minutes=10)
SHIFT: Final = timedelta(hours=12)
DEFAULT_REVEALS_PER_SHIFT: Final = 50
PAGE: Final = 50


@dataclass(frozen=True)
class Reviewer:
    """The person acting, as the console's sign-in established them."""

    id: int
    name: str
    roles: frozenset[str]

    @property
    def sees_restricted(self) -> bool:
        return not SEE_RESTRICTED.isdisjoint(self.roles)

    @property
    def decides(self) -> bool:
        return not DECIDE.isdisjoint(self.roles)

    @property
    def leads(self) -> bool:
        return not LEAD_DASHBOARDS.isdisjoint(self.roles)


class ItemGone(NotFound):
    code = "item_not_found"


class ItemHeld(Conflict):
    code = "item_held"


@dataclass(frozen=True)
class ItemSummary:
    id: int
    queue: str
    kind: str
    subject: str
    account_id: str | None
    clause: str | None
    restricted: bool
    has_media: bool
    priority: int
    due_at: datetime
    created_at: datetime
    status: str
    claimed_by: int | None
    claimed_until: datetime | None
    outcome: str | None

    def seconds_left(self, now: datetime) -> float:
        return (self.due_at - now).total_seconds()

    def held_by_other(self, reviewer: Reviewer, now: datetime) -> bool:
        return (self.claimed_by not in (None, reviewer.id) and self.claimed_until is not None
                and self.claimed_until > now)


def summary(row: ReviewItem) -> ItemSummary:
    return ItemSummary(row.id, row.queue, row.kind, row.subject, row.account_id, row.clause,
                       row.restricted, row.has_media, row.priority, row.due_at,
                       row.created_at, row.status, row.claimed_by, row.claimed_until,
                       row.outcome)


@dataclass(frozen=True)
class HistoryEvent:
    kind: str
    actor: str
    at: datetime
    details: dict[str, Any]


@dataclass(frozen=True)
class AccountHistory:
    account_id: str
    strikes: list[dict[str, Any]]
    suspensions: list[dict[str, Any]]
    recent_checks: list[dict[str, Any]]
    takedown_cases: list[str]


@dataclass
class ItemDetail:
    """Everything a reviewer needs to decide one item (media itself is fetched apart,
    blurred unless revealed)."""

    item: ItemSummary
    events: list[HistoryEvent]
    check: dict[str, Any] | None = None  # kind, decision, clause, prompt, verdict, ...
    media: int = 0  # how many images can be shown
    appeal: dict[str, Any] | None = None
    case: dict[str, Any] | None = None  # a takedown case's record
    account: AccountHistory | None = None
    related: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    open: int
    overdue: int
    oldest: datetime | None
    handled: int  # decided in the last 7 days
    median_handling_s: float | None
    p95_handling_s: float | None


class ReviewQueues:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None,
                 reveals_per_shift: int = DEFAULT_REVEALS_PER_SHIFT,
                 case_view: Callable[[str], dict[str, Any]] | None = None,
                 vault: Vault | None = None) -> None:
        self.db = db
        self._vault = vault  # where the images are sealed
        audit.install()  # claims, reveals and decisions are links of the audit chain
        self._clock = clock or (lambda: datetime.now(UTC))
        self.reveals_per_shift = reveals_per_shift
        self._case_view = case_view  # a takedown case's record, for the item view

    def now(self) -> datetime:
        return self._clock()

    # -- listing ----------------------------------------------------------------------

    def page(self, reviewer: Reviewer, queue: str, *, status: str = "open",
             limit: int = PAGE, after: tuple[int, datetime, int] | None = None,
             ) -> list[ItemSummary]:
        """A queue in the order it is worked (priority, then the soonest due), as this
        reviewer may see it. ``after`` is the (priority, due_at, id) of the last item of
        the previous page."""
        query = self._visible(select(ReviewItem), reviewer).where(
            ReviewItem.queue == queue, ReviewItem.status == status)
        if after is not None:  # a row-value comparison: one index range scan
            query = query.where(tuple_(ReviewItem.priority, ReviewItem.due_at,
                                       ReviewItem.id) > tuple_(*after))
        query = query.order_by(ReviewItem.priority, ReviewItem.due_at, ReviewItem.id)
        with self.db.transaction() as s:
            return [summary(r) for r in s.scalars(query.limit(limit))]

    def queues(self, reviewer: Reviewer) -> list[str]:
        """The queues this reviewer works (the child-safety queue only for those who may
        see it; the leads' queue for leads)."""
        out = [q.value for q in Queue]
        if not reviewer.sees_restricted:
            out.remove(Queue.CHILD_SAFETY)
        if not reviewer.leads:
            out.remove(Queue.LEADS)
        return out

    def stats(self, reviewer: Reviewer) -> list[QueueStats]:
        """Per queue: depth, overdue, oldest open item, handling time (claim to decision,
        last 7 days): what a lead watches."""
        now = self._clock()
        since = now - timedelta(days=7)
        out = []
        with self.db.transaction() as s:
            for queue in self.queues(reviewer):
                base = self._visible(select(ReviewItem.id), reviewer).where(
                    ReviewItem.queue == queue, ReviewItem.status == "open")
                count = s.scalar(select(func.count()).select_from(base.subquery())) or 0
                overdue = s.scalar(select(func.count()).select_from(
                    base.where(ReviewItem.due_at < now).subquery())) or 0
                oldest = s.scalar(self._visible(select(func.min(ReviewItem.created_at)),
                                                reviewer).where(
                    ReviewItem.queue == queue, ReviewItem.status == "open"))
                handled, times = _handling(s, queue, since)
                out.append(QueueStats(queue, count, overdue, oldest, handled,
                                      _quantile(times, 0.5), _quantile(times, 0.95)))
        return out

    # -- claiming ---------------------------------------------------------------------

    def take_next(self, reviewer: Reviewer, queue: str) -> ItemSummary | None:
        """Claim the next item of ``queue`` for 10 minutes, or None when nothing is free.
        No two reviewers ever hold the same item; a reviewer past the shift's reveal
        limit is offered only items without media."""
        if not reviewer.decides:
            return None
        now = self._clock()
        media_ok = self.reveals_this_shift(reviewer) < self.reveals_per_shift
        query = self._claimable(select(ReviewItem), reviewer, now).where(
            ReviewItem.queue == queue)
        if not media_ok:
            query = query.where(ReviewItem.has_media.is_(False))
        query = (query.order_by(ReviewItem.priority, ReviewItem.due_at, ReviewItem.id)
                 .limit(1).with_for_update(skip_locked=True))
        with self.db.transaction() as s:
            row = s.scalars(query).first()
            if row is None:
                return None
            self._hold(s, row, reviewer, now)
            return summary(row)

    def claim(self, reviewer: Reviewer, item_id: int) -> ItemSummary:
        """Claim one item picked from a list (for 10 minutes, again if already yours)."""
        if not reviewer.decides:
            raise ItemHeld("your role does not decide items")
        now = self._clock()
        with self.db.transaction() as s:
            row = self._row(s, reviewer, item_id, lock=True)
            if row.status != "open":
                raise ItemHeld(f"item {item_id} is already decided")
            if row.excluded_user_id == reviewer.id:
                raise ItemHeld("you made the decision this appeal contests; another reviewer "
                               "must take it")
            if summary(row).held_by_other(reviewer, now):
                raise ItemHeld(f"item {item_id} is being reviewed by someone else")
            self._hold(s, row, reviewer, now)
            return summary(row)

    def release(self, reviewer: Reviewer, item_id: int) -> None:
        with self.db.transaction() as s:
            row = self._row(s, reviewer, item_id, lock=True)
            if row.claimed_by == reviewer.id:
                row.claimed_by, row.claimed_until = None, None
                self.event(s, row.id, "released", reviewer)

    # -- looking ----------------------------------------------------------------------

    def detail(self, reviewer: Reviewer, item_id: int) -> ItemDetail:
        with self.db.transaction() as s:
            row = self._row(s, reviewer, item_id)
            events = [HistoryEvent(e.kind, e.actor, e.at, e.details) for e in s.scalars(
                select(ReviewEvent).where(ReviewEvent.item_id == row.id)
                .order_by(ReviewEvent.id))]
            out = ItemDetail(summary(row), events)
            check_id = self.check_of(s, row)
            actor = f"user:{reviewer.id}:{reviewer.name}"
            if check_id is not None:
                out.check, out.media = _check_detail(s, check_id)
                if out.check is not None:
                    out.check["prompt"] = self._open_field(
                        s, out.check["prompt"], Column.CHECK_PROMPT, actor, check_id)
                    out.check["verdict"] = with_quotes(out.check["verdict"],
                                                       out.check["prompt"])
            if row.kind in ("appeal", "hash_dispute"):
                appeal = s.scalars(select(Appeal).where(Appeal.review_item_id == row.id)).first()
                if appeal is not None:
                    out.appeal = {"subject_kind": appeal.subject_kind,
                                  "subject": appeal.subject, "filed_at": appeal.filed_at,
                                  "reason": self._open_field(
                                      s, appeal.reason, Column.APPEAL_REASON, actor,
                                      f"appeal:{appeal.id}")}
            number = self.case_of(s, row)
            if row.account_id:
                out.account = _account_history(s, row.account_id)
        # Outside the transaction: the case is read in one of its own (on SQLite a second
        # writer inside the first would wait for it forever).
        if number is not None and self._case_view is not None:
            out.case = self._case_view(number)
        return out

    def _open_field(self, s: Session, value: str | None, column: Column, actor: str,
                    subject: str) -> str | None:
        """A sealed field for a reviewer to read (the opening is audited)."""
        if self._vault is None:
            return None if is_sealed(value) else value  # no keys here: nothing to show
        return self._vault.open_field(s, value, column, actor=actor, subject=subject)

    def media(self, reviewer: Reviewer, item_id: int, position: int, *,
              reveal: bool) -> bytes:
        """The bytes of one image of an item, for the console to render (blurred unless
        ``reveal``). A reveal is recorded; past the shift's limit it is refused."""
        return self.media_and_reasons(reviewer, item_id, position, reveal=reveal)[0]

    def media_and_reasons(self, reviewer: Reviewer, item_id: int, position: int, *,
                          reveal: bool) -> tuple[bytes, list[dict[str, Any]]]:
        """As ``media``, with the verdict's reasons (the face boxes to draw over it)."""
        with self.db.transaction() as s:
            row = self._row(s, reviewer, item_id)
            check_id = self.check_of(s, row)
            media = s.get(CheckMedia, (check_id, position)) if check_id else None
            if media is None:
                raise ItemGone(f"item {item_id} has no image {position}")
            record = s.get(CheckRecord, check_id)
            reasons = list((record.verdict or {}).get("reasons", [])) if record else []
            if reveal:
                if self._reveals(s, reviewer) >= self.reveals_per_shift:
                    raise TooManyAttempts(
                        f"you have revealed {self.reveals_per_shift} images this shift; take "
                        "a break from media: only work without images is offered now",
                        code="reveal_limit")
                self.event(s, row.id, "revealed", reviewer, position=position)
            data, sealed = media.content, media.evidence_id
        if data is None and self._vault is not None and sealed is not None:
            # Opened from the vault: the opening is recorded in the audit chain.
            data = self._vault.open(sealed, actor=f"user:{reviewer.id}:{reviewer.name}",
                                    why=f"reviewing item {item_id} ("
                                        f"{'revealed' if reveal else 'blurred'})").content
        if data is None:
            raise ItemGone(f"item {item_id} has no image {position}")
        return data, reasons

    def drop_settled_media(self, appeal_window: timedelta) -> int:
        """NCII evidence keeps its hashes and metadata only, once its decision is
        settled: the image bytes of a refused or held II-1/II-2/II-3 request are dropped
        when its appeal window has closed and no review of it (the request itself, or an
        appeal of it) is open. Legal holds keep theirs. Returns how many requests."""
        if self._vault is None:
            return 0
        checks = self._vault.with_content("check_media", NCII_CLAUSES,
                                          self._clock() - appeal_window)
        with self.db.transaction() as s:
            subjects = [*checks, *(f"check:{c}" for c in checks)]
            open_reviews = {str(subject).removeprefix("check:") for subject in s.scalars(
                select(ReviewItem.subject).where(ReviewItem.status == "open",
                                                 ReviewItem.subject.in_(subjects)))}
        settled = [c for c in checks if c not in open_reviews]
        for check_id in settled:
            self._vault.drop_content("check_media", check_id, actor="system",
                                     reason="NCII decision settled: image bytes not kept")
        return len(settled)

    def image(self, check_id: str, position: int, *, why: str) -> bytes | None:
        """One image of a check, for the service's own work (hashing it for a bank)."""
        if self._vault is not None:
            return self._vault.media(check_id, position, actor="system", why=why)
        with self.db.transaction() as s:
            row = s.get(CheckMedia, (check_id, position))
            return row.content if row is not None else None

    def reveals_this_shift(self, reviewer: Reviewer) -> int:
        with self.db.transaction() as s:
            return self._reveals(s, reviewer)

    def reveal_counts(self, since: datetime | None = None) -> dict[str, int]:
        """Reveals per reviewer this shift, for leads."""
        since = since or self._clock() - SHIFT
        with self.db.transaction() as s:
            rows = s.execute(select(ReviewEvent.actor, func.count()).where(
                ReviewEvent.kind == "revealed", ReviewEvent.at >= since)
                .group_by(ReviewEvent.actor)).all()
        return {actor: count for actor, count in rows}

    # -- shared steps -----------------------------------------------------------------

    def event(self, s: Session, item_id: int, kind: str, reviewer: Reviewer | None,
              **details: Any) -> None:
        s.add(ReviewEvent(item_id=item_id, kind=kind, at=self._clock(),
                          actor_id=reviewer.id if reviewer else None,
                          actor=reviewer.name if reviewer else "system", details=details))

    def item_row(self, s: Session, reviewer: Reviewer, item_id: int, *,
                 lock: bool = False) -> ReviewItem:
        return self._row(s, reviewer, item_id, lock=lock)

    @staticmethod
    def check_of(s: Session, row: ReviewItem) -> str | None:
        """The check an item is about (directly, or through the appeal it carries)."""
        if row.kind in ("review_verdict", "image_refusal", "cs1_confirmation"):
            return row.subject
        if row.kind in ("appeal", "hash_dispute"):
            appeal = s.scalars(select(Appeal).where(Appeal.review_item_id == row.id)).first()
            if appeal is not None and appeal.subject_kind == "check":
                return appeal.subject
        return None

    @staticmethod
    def case_of(s: Session, row: ReviewItem) -> str | None:
        """The takedown case an item is about, if any."""
        if row.kind in ("takedown_case", "csam_notice"):
            return row.subject
        if row.kind == "appeal":
            appeal = s.scalars(select(Appeal).where(Appeal.review_item_id == row.id)).first()
            if appeal is not None and appeal.subject_kind == "takedown":
                return appeal.subject.split(":", 1)[0]
        return None

    def _row(self, s: Session, reviewer: Reviewer, item_id: int, *,
             lock: bool = False) -> ReviewItem:
        query = self._visible(select(ReviewItem), reviewer).where(ReviewItem.id == item_id)
        row = s.scalars(query.with_for_update() if lock else query).first()
        if row is None:  # or not theirs to see: the same answer
            raise ItemGone(f"no item {item_id}")
        return row

    @staticmethod
    def _visible(query: Any, reviewer: Reviewer) -> Any:
        return query if reviewer.sees_restricted else query.where(
            ReviewItem.restricted.is_(False))

    def _claimable(self, query: Any, reviewer: Reviewer, now: datetime) -> Any:
        return self._visible(query, reviewer).where(
            ReviewItem.status == "open",
            or_(ReviewItem.claimed_until.is_(None), ReviewItem.claimed_until < now,
                ReviewItem.claimed_by == reviewer.id),
            or_(ReviewItem.excluded_user_id.is_(None),
                ReviewItem.excluded_user_id != reviewer.id))

    def _hold(self, s: Session, row: ReviewItem, reviewer: Reviewer, now: datetime) -> None:
        row.claimed_by, row.claimed_until = reviewer.id, now + CLAIM
        self.event(s, row.id, "claimed", reviewer, until=row.claimed_until.isoformat())

    def _reveals(self, s: Session, reviewer: Reviewer) -> int:
        return s.scalar(select(func.count()).select_from(ReviewEvent).where(
            ReviewEvent.actor_id == reviewer.id, ReviewEvent.kind == "revealed",
            ReviewEvent.at >= self._clock() - SHIFT)) or 0


def _check_detail(s: Session, check_id: str) -> tuple[dict[str, Any] | None, int]:
    record = s.get(CheckRecord, check_id)
    if record is None:
        return None, 0
    media = s.scalar(select(func.count()).select_from(CheckMedia).where(
        CheckMedia.check_id == check_id)) or 0
    return {"id": record.id, "kind": record.kind, "decision": record.decision,
            "clause": record.clause, "category": record.category, "prompt": record.prompt,
            "content_id": record.content_id, "created_at": record.created_at,
            "verdict": record.verdict}, media


def _account_history(s: Session, account_id: str) -> AccountHistory:
    strikes = [{"clause": r.clause, "weight": r.weight, "created_at": r.created_at,
                "expires_at": r.expires_at, "revoked": r.revoked_at is not None,
                "check": r.check_id, "case": r.takedown_case}
               for r in s.scalars(select(Strike).where(Strike.account_id == account_id)
                                  .order_by(Strike.created_at.desc()).limit(50))]
    suspensions = [{"clause": r.clause, "reason": r.reason, "starts_at": r.starts_at,
                    "ends_at": r.ends_at, "lifted": r.lifted_at is not None,
                    "pending_review": r.pending_review}
                   for r in s.scalars(select(Suspension).where(
                       Suspension.account_id == account_id)
                       .order_by(Suspension.starts_at.desc()).limit(20))]
    checks = [{"id": r.id, "kind": r.kind, "decision": r.decision, "clause": r.clause,
               "created_at": r.created_at}
              for r in s.scalars(select(CheckRecord).where(CheckRecord.account_id == account_id)
                                 .order_by(CheckRecord.created_at.desc()).limit(20))]
    cases = sorted({c for c in s.scalars(select(Strike.takedown_case).where(
        Strike.account_id == account_id, Strike.takedown_case.is_not(None))) if c})
    return AccountHistory(account_id, strikes, suspensions, checks, cases)


def _handling(s: Session, queue: str, since: datetime) -> tuple[int, list[float]]:
    """Items a person decided since ``since``, and the seconds from first claim to
    decision for those that were claimed first (a bulk decision has no claim)."""
    decided = s.execute(select(ReviewItem.id, func.max(ReviewEvent.at)).join(
        ReviewEvent, ReviewEvent.item_id == ReviewItem.id).where(
        ReviewItem.queue == queue, ReviewItem.status == "closed",
        ReviewItem.closed_at >= since, ReviewEvent.kind == "decided")
        .group_by(ReviewItem.id)).all()
    if not decided:
        return 0, []
    first_claims = dict(s.execute(select(ReviewEvent.item_id, func.min(ReviewEvent.at)).where(
        ReviewEvent.item_id.in_([i for i, _ in decided]), ReviewEvent.kind == "claimed")
        .group_by(ReviewEvent.item_id)).all())
    return len(decided), sorted((at - first_claims[i]).total_seconds() for i, at in decided
                                if i in first_claims)


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
