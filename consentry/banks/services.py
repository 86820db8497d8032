"""The bank layer as the gate and the API use it: registry, matcher and content index
over one database."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from consentry.banks.content import ContentIndex
from consentry.banks.content_match import ClickHouseContentMatch, ContentMatch
from consentry.banks.matcher import BankMatcher
from consentry.banks.registry import BankError, BankRegistry, DuplicateEntry, EntryHashes
from consentry.config import Settings
from consentry.signals.hashing import Fingerprint
from consentry.store import Database

OWN_REFUSALS = "own-refusals"


def entry_hashes(fp: Fingerprint) -> EntryHashes:
    """What a bank or the content index stores for a fingerprinted image."""
    return EntryHashes(
        md5=fp.hashes.md5,
        sha256=fp.hashes.sha256,
        pdq=fp.hashes.pdq.hex if fp.hashes.pdq else None,
        pdq_quality=fp.hashes.pdq_quality,
        pdq_variants=tuple((h.variant, h.hex) for h in fp.ingest),
    )


def content_match_for(db: Database, settings: Settings | None) -> ContentMatch | None:
    """The configured content match backend; None for the in-memory default."""
    if settings is None or settings.content_index == "memory":
        return None
    from consentry.store.clickhouse import connect_clickhouse

    assert settings.clickhouse_url is not None  # Settings checks it
    return ClickHouseContentMatch(db, connect_clickhouse(settings.clickhouse_url,
                                                         settings.clickhouse_database))


@dataclass
class BankServices:
    registry: BankRegistry
    matcher: BankMatcher
    content: ContentIndex

    @classmethod
    def open(cls, db: Database, *, index_dir: Path | None = None,
             content_index_dir: Path | None = None,
             settings: Settings | None = None) -> BankServices:
        """With index directories, both match indexes are saved there and a restart
        loads them instead of reading every hash row again. ``settings`` choose where the
        content index looks for copies (in memory unless CONSENTRY_CONTENT_INDEX says)."""
        return cls(BankRegistry(db), BankMatcher(db, index_dir=index_dir),
                   ContentIndex(db, index_dir=content_index_dir,
                                match=content_match_for(db, settings)))

    def bank_refusal(self, fp: Fingerprint, clause: str, *, check_id: str,
                     actor: str = "gate") -> int | None:
        """Block once, block everywhere: hash a refused image into the own-refusals bank.
        Returns the entry id (an existing one if the image is already banked)."""
        try:
            self.registry.get(OWN_REFUSALS)
        except BankError:
            with suppress(BankError):  # created concurrently
                self.registry.create(OWN_REFUSALS, "block", "own_refusals",
                                     description="images this gate refused", actor=actor)
        hashes = entry_hashes(fp)
        if hashes.md5 is None and hashes.pdq is None:
            return None
        try:
            return self.registry.add_entry(OWN_REFUSALS, hashes, source="gate", clause=clause,
                                           details={"check": check_id}, actor=actor).id
        except DuplicateEntry as dup:
            return dup.entry_id

    def close(self) -> None:
        self.matcher.close()
        self.content.close()
