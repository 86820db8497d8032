"""A takedown case's file: its row, the events appended to it, the view folded from them,
and the notices sent on it. Every action and worker goes through here, so that what
happened to a case is always an event, and every message sent is recorded whether it was
delivered or not (the model Bluesky's Ozone uses: ``logEvent`` -> status -> views)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry.cases import notices
from consentry.cases.case import CaseView, Event, EventKind, fold_case, normalise_case_number
from consentry.cases.intake import TakedownSubmission, submission_from_dict, submission_to_dict
from consentry.cases.senders import Delivery, Sender
from consentry.errors import Conflict, NotFound
from consentry.evidence import Vault
from consentry.evidence.fields import Column, SealedFields, seals
from consentry.store import Database
from consentry.store.models import CaseEvent, CaseKey, Notification, TakedownCase


class CaseNotFound(NotFound):
    """No case with that number (and PIN): the same answer either way."""

    code = "case_not_found"


class CaseStateError(Conflict):
    """The action does not apply to the case as it stands."""

    code = "wrong_state"


def record_notice(s: Session, notice: notices.Notice, delivery: Delivery, at: datetime,
                  fields: SealedFields | None, *, case_id: int | None = None,
                  review_item_id: int | None = None, once_key: str | None = None
                  ) -> Notification:
    """Keep a message sent (or attempted), about a case or a review item: with ``fields``,
    the address, the text and the delivery detail (which may echo the address) are
    sealed."""
    note = Notification(case_id=case_id, review_item_id=review_item_id, kind=notice.kind,
                        recipient=_sealed(fields, notice.recipient, Column.NOTICE_RECIPIENT),
                        subject=notice.subject,
                        body=_sealed(fields, notice.body, Column.NOTICE_BODY),
                        channel=delivery.channel, delivered=delivery.delivered,
                        detail=_sealed(fields, delivery.detail[:1000], Column.NOTICE_DETAIL),
                        at=at, once_key=once_key)
    s.add(note)
    s.flush()
    return note


def _sealed(fields: SealedFields | None, value: str, column: Column) -> str:
    return fields.seal(value, column) if fields and seals(column, value) else value


# What a claimed notice's row says until its delivery is known: a process that died
# between claiming and sending leaves it so, for a person to check (it is never resent).
CLAIMED = "claimed; not yet sent, or sent by a process that stopped before recording it"


def once_key(number: str, notice: notices.Notice, occasion: str) -> str:
    """The key a notice is sent at most once under: its case, kind, recipient (digested:
    the key is not sealed) and occasion (e.g. the case's n-th receipt)."""
    text = "\x1f".join((normalise_case_number(number), notice.kind, notice.recipient, occasion))
    return hashlib.sha256(text.encode()).hexdigest()


class CaseLog:
    def __init__(self, db: Database, sender: Sender, clock: Callable[[], datetime],
                 vault: Vault | None = None) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.vault = vault  # where requesters' details are sealed (None: kept in the row)

    # -- the request, sealed ----------------------------------------------------------

    def store_request(self, s: Session, row: TakedownCase,
                      submission: TakedownSubmission) -> None:
        """Keep the request with its case: sealed in the vault (the row keeps only the
        sealed item's id), so the requester's name, contact and statement are never in
        a plaintext table."""
        data = submission_to_dict(submission)
        if self.vault is None:
            row.submission = data
            return
        sealed = self.vault.seal(s, subject_kind="takedown_request", subject=row.number,
                                 content=None, metadata=data, actor="requester")
        row.submission = {"sealed": sealed}

    def request(self, s: Session, row: TakedownCase, why: str) -> TakedownSubmission:
        """The request of a case (opened from the vault, recorded with ``why``)."""
        return submission_from_dict(self._request_dict(s, row, why))

    def _request_dict(self, s: Session, row: TakedownCase, why: str) -> dict[str, Any]:
        sealed = row.submission.get("sealed")
        if sealed is None:
            return dict(row.submission)
        if self.vault is None:
            raise CaseStateError(f"case {row.number}'s request is sealed in the evidence "
                                 "vault, and no vault was given to open it")
        return self.vault.open(sealed, actor="system", why=why, session=s).metadata

    def requester_email(self, s: Session, row: TakedownCase) -> str:
        data = self._request_dict(s, row, f"writing to the requester of {row.number}")
        return str(data.get("email", "")).strip()

    def row(self, s: Session, number: str, *, lock: bool = False) -> TakedownCase:
        """The case's row; with ``lock``, held until the transaction ends (PostgreSQL), so
        that two processes acting on one case take turns."""
        query = select(TakedownCase).where(TakedownCase.number == normalise_case_number(number))
        row = s.scalars(query.with_for_update() if lock else query).first()
        if row is None:
            raise CaseNotFound(f"no case {number!r}")
        return row

    def view(self, s: Session, row: TakedownCase) -> CaseView:
        """The case as its events say it stands (``case.fold_case``)."""
        events = [Event(EventKind(e.kind), e.at, e.actor, e.automated, e.details)
                  for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == row.id)
                                     .order_by(CaseEvent.id))]
        return fold_case(row.number, row.regime, row.received_at, row.deadline_at,
                         row.merged_into, events)

    def event(self, s: Session, row: TakedownCase, kind: EventKind, actor: str, *,
              automated: bool = True, **details: Any) -> None:
        s.add(CaseEvent(case_id=row.id, kind=kind.value, at=self.clock(), actor=actor,
                        automated=automated, details=details))

    def open_case_with(self, s: Session, keys: Sequence[str]) -> TakedownCase | None:
        """The oldest open case (not itself merged) that names any of ``keys``."""
        if not keys:
            return None
        return s.scalars(select(TakedownCase).join(CaseKey, CaseKey.case_id == TakedownCase.id)
                         .where(CaseKey.key.in_(list(keys)), TakedownCase.closed_at.is_(None),
                                TakedownCase.merged_into.is_(None))
                         .order_by(TakedownCase.id)).first()

    def requesters(self, s: Session, row: TakedownCase) -> list[str]:
        """The case's requester and those of duplicates merged into it."""
        rows = [row, *s.scalars(select(TakedownCase).where(
            TakedownCase.merged_into == row.number))]
        emails = [self.requester_email(s, r) for r in rows]
        return list(dict.fromkeys(e for e in emails if e))

    def send(self, number: str, notice: notices.Notice, *, once: str | None = None) -> bool:
        """Send a notice on the case and record it (and its delivery) as an event.

        With ``once`` (the occasion: which receipt of the case it answers), the notice
        leaves at most once per case, kind, recipient and occasion, whichever process or
        retried job sends it: its row is claimed (written with a unique key and committed)
        before the message leaves, and a second claim finds the key and sends nothing.
        Returns whether the notice was sent by this call."""
        fields = self.vault.fields if self.vault else None
        if once is None:
            delivery = self.sender.send(notice)
            with self.db.transaction() as s:
                row = self.row(s, number)
                note = record_notice(s, notice, delivery, self.clock(), fields, case_id=row.id)
                self._notified(s, row, note, notice, delivery)
            return True
        key = once_key(number, notice, once)
        try:
            with self.db.transaction() as s:
                row = self.row(s, number)
                note_id = record_notice(s, notice, Delivery(False, self.sender.name, CLAIMED),
                                        self.clock(), fields, case_id=row.id,
                                        once_key=key).id
        except IntegrityError:
            return False  # sent (or being sent) already
        delivery = self.sender.send(notice)
        with self.db.transaction() as s:
            note = s.get_one(Notification, note_id)
            note.channel, note.delivered = delivery.channel, delivery.delivered
            note.detail = _sealed(fields, delivery.detail[:1000], Column.NOTICE_DETAIL)
            self._notified(s, self.row(s, number), note, notice, delivery)
        return True

    def sent_once(self, number: str, notice: notices.Notice, once: str) -> bool:
        """Whether a notice sent with ``once`` has been claimed already."""
        with self.db.transaction() as s:
            return s.scalar(select(Notification.id).where(
                Notification.once_key == once_key(number, notice, once))) is not None

    def _notified(self, s: Session, row: TakedownCase, note: Notification,
                  notice: notices.Notice, delivery: Delivery) -> None:
        self.event(s, row, EventKind.NOTIFIED, "system", notification=note.id,
                   notice=notice.kind, delivered=delivery.delivered,
                   to="requester" if "@" in notice.recipient else notice.recipient)
