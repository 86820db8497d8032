"""The messages Consentry recorded as sent, with their sealed address and text opened
(as the service itself would, with the vault's keys): what the recipient was told."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from consentry.evidence import Vault
from consentry.evidence.fields import Column
from consentry.store import Database
from consentry.store.models import Notification


@dataclass(frozen=True)
class SentNotice:
    id: int
    kind: str
    recipient: str
    subject: str
    body: str
    delivered: bool
    case_id: int | None
    review_item_id: int | None


def sent_notices(db: Database, vault: Vault | None, kind: str | None = None
                 ) -> list[SentNotice]:
    def opened(value: str, column: Column) -> str:
        return (vault.fields.open(value, column) or "") if vault is not None else value

    query = select(Notification).order_by(Notification.id)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    with db.transaction() as s:
        return [SentNotice(n.id, n.kind, opened(n.recipient, Column.NOTICE_RECIPIENT),
                           n.subject, opened(n.body, Column.NOTICE_BODY), n.delivered,
                           n.case_id, n.review_item_id)
                for n in s.scalars(query)]
