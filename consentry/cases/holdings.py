"""What a takedown case stands behind: the content it claims (located, or found already
down) and the bank entries it holds. A reversal undoes only what the reversed case did
and no other standing case relies on: content another standing case claims stays down,
and an entry stays enabled while any standing case holds it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from consentry.banks.registry import BankError, BankRegistry, DuplicateEntry, EntryHashes
from consentry.cases.case import CaseStatus, CaseView, EventKind
from consentry.cases.log import CaseLog
from consentry.store.dialect import upsert_insert
from consentry.store.models import CaseBankEntry, CaseItem, TakedownCase

TAKEDOWN_BANK: Final = "takedowns"
CLAUSE: Final = "II-3"  # known intimate image shared without consent
# Cases that no longer stand behind their removals and entries.
UNDONE: Final = frozenset({CaseStatus.REVERSED, CaseStatus.REJECTED})


def claim_items(s: Session, row: TakedownCase, content_ids: Sequence[str]) -> None:
    """Record the content a case stands behind."""
    for content_id in dict.fromkeys(content_ids):
        s.execute(upsert_insert(s, CaseItem).values(case_id=row.id, content_id=content_id)
                  .on_conflict_do_nothing(index_elements=["case_id", "content_id"]))


def bank_for_case(registry: BankRegistry, log: CaseLog, number: str,
                  hashes: Sequence[EntryHashes]) -> None:
    """Bank a case's hashes under II-3 and hold the entries: a new entry, one already
    there (from another case, an import or an administrator), or one a reversal had
    disabled, which this case turns back on."""
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
    with log.db.transaction() as s:
        row = log.row(s, number)
        for entry_id, activated in held.items():
            s.execute(upsert_insert(s, CaseBankEntry)
                      .values(case_id=row.id, entry_id=entry_id, activated=activated)
                      .on_conflict_do_nothing(index_elements=["case_id", "entry_id"]))
        log.event(s, row, EventKind.BANKED, "system", bank=TAKEDOWN_BANK,
                  entries=sorted(held), activated=sorted(e for e, made in held.items() if made))


def claimed_elsewhere(s: Session, row: TakedownCase,
                      fold: Callable[[Session, TakedownCase], CaseView]) -> set[str]:
    """Content that other cases, not reversed or rejected, stand behind."""
    claims = s.execute(select(CaseItem.content_id, TakedownCase).join(
        TakedownCase, TakedownCase.id == CaseItem.case_id).where(
        CaseItem.case_id != row.id, CaseItem.content_id.in_(
            select(CaseItem.content_id).where(CaseItem.case_id == row.id)))).all()
    return {content_id for content_id, other in claims if fold(s, other).status not in UNDONE}


def entries_to_release(s: Session, row: TakedownCase,
                       fold: Callable[[Session, TakedownCase], CaseView]) -> list[int]:
    """The entries this case made active that no other standing case holds."""
    mine = s.scalars(select(CaseBankEntry.entry_id).where(
        CaseBankEntry.case_id == row.id, CaseBankEntry.activated.is_(True))).all()
    release = []
    for entry_id in mine:
        holders = s.scalars(select(TakedownCase).join(
            CaseBankEntry, CaseBankEntry.case_id == TakedownCase.id).where(
            CaseBankEntry.entry_id == entry_id, TakedownCase.id != row.id)).all()
        if all(fold(s, other).status in UNDONE for other in holders):
            release.append(entry_id)
    return release
