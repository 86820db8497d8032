"""The content index: what is already on the platform, by hash, so that a hash banked
later finds the copies that are already there ("sweep").

Content rows are only ever added (removal is a timestamp), so the match backend
(``consentry.banks.content_match``: in memory by default, or ClickHouse) catches up by
loading hash rows newer than the last one it holds; removed items are filtered when the
database is asked for the matched rows. With an ``index_dir`` the in-memory index is
saved with the id of the last hash row it holds, so a restart loads the memory-mapped
index and only the rows added since, instead of every row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from consentry.banks.content_match import ContentMatch, MemoryContentMatch, chunks
from consentry.banks.matcher import PDQ_MATCH_DISTANCE
from consentry.banks.registry import BankError, EntryHashes
from consentry.errors import Conflict
from consentry.store import Database
from consentry.store.models import ContentHash, ContentItem

MAX_URL_LENGTH = 2048  # indexed: the database's index key limit stays far away


class ContentIdTaken(BankError, Conflict):
    """A content id names one image; it was registered with different bytes."""

    code = "content_id_taken"


def canonical_url(url: str) -> str:
    """The form a URL is indexed and looked up under, so that a requester's link finds
    the item whatever its case, default port, fragment or trailing slash."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return url.strip()
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        return url.strip()
    netloc = host if port is None or port == default else f"{host}:{port}"
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


@dataclass(frozen=True)
class ContentRecord:
    content_id: str
    kind: str
    account_id: str | None
    url: str | None
    md5: str
    pdq: str | None
    registered_at: datetime
    removed: bool
    distance: int | None = None  # set when found by hash

    def to_dict(self) -> dict[str, object]:
        return {"content_id": self.content_id, "kind": self.kind, "account": self.account_id,
                "url": self.url, "md5": self.md5, "pdq": self.pdq,
                "registered_at": self.registered_at.isoformat(), "removed": self.removed,
                "distance": self.distance}


def _record(item: ContentItem, distance: int | None = None) -> ContentRecord:
    return ContentRecord(item.content_id, item.kind, item.account_id, item.url, item.md5,
                         item.pdq, item.registered_at, item.removed_at is not None, distance)


class ContentIndex:
    """Registers platform content by hash and finds every copy of an image."""

    def __init__(self, db: Database, *, index_dir: Path | None = None,
                 clock: Callable[[], datetime] | None = None,
                 match: ContentMatch | None = None) -> None:
        """``match`` is where copies are looked for; by default the in-memory index (saved
        under ``index_dir`` when given)."""
        self.db = db
        self._clock = clock or (lambda: datetime.now(UTC))
        self.match = match if match is not None else MemoryContentMatch(db, index_dir=index_dir)
        self.sync()

    def register(self, content_id: str, kind: str, hashes: EntryHashes, *,
                 account_id: str | None = None, url: str | None = None) -> ContentRecord:
        """Record a content item; registering the same id with the same bytes again is a
        no-op, with different bytes an error (content ids name one image)."""
        hashes = hashes.validated()
        if not content_id or len(content_id) > 200:
            raise BankError("content_id must be 1-200 characters")
        if kind not in {"upload", "output"}:
            raise BankError("kind must be 'upload' or 'output'")
        if url is not None and len(url) > MAX_URL_LENGTH:
            raise BankError(f"url must be at most {MAX_URL_LENGTH} characters")
        url = canonical_url(url) if url is not None else None
        try:
            with self.db.transaction() as s:
                existing = s.scalars(select(ContentItem).where(
                    ContentItem.content_id == content_id)).first()
                if existing is not None:
                    return _same_bytes(existing, hashes)
                item = ContentItem(content_id=content_id, kind=kind, account_id=account_id,
                                   url=url, md5=hashes.md5 or "", sha256=hashes.sha256 or "",
                                   pdq=hashes.pdq, registered_at=self._clock())
                s.add(item)
                s.flush()
                s.add_all(ContentHash(item_id=item.id, pdq=value, variant=variant)
                          for variant, value in hashes.indexed())
                return _record(item)
        except IntegrityError:  # registered concurrently
            with self.db.transaction() as s:
                existing = s.scalars(select(ContentItem).where(
                    ContentItem.content_id == content_id)).first()
                if existing is None:
                    raise
                return _same_bytes(existing, hashes)

    def get(self, content_id: str) -> ContentRecord | None:
        with self.db.transaction() as s:
            item = s.scalars(select(ContentItem).where(
                ContentItem.content_id == content_id)).first()
            return _record(item) if item else None

    def stored_hashes(self, content_id: str) -> EntryHashes | None:
        """The hashes registered for an item, as a bank entry would hold them."""
        with self.db.transaction() as s:
            item = s.scalars(select(ContentItem).where(
                ContentItem.content_id == content_id)).first()
            if item is None:
                return None
            variants = s.execute(select(ContentHash.variant, ContentHash.pdq).where(
                ContentHash.item_id == item.id).order_by(ContentHash.id)).all()
            return EntryHashes(md5=item.md5 or None, sha256=item.sha256 or None, pdq=item.pdq,
                               pdq_variants=tuple((v, h) for v, h in variants))

    def by_url(self, url: str) -> ContentRecord | None:
        forms = list(dict.fromkeys((canonical_url(url), url)))
        with self.db.transaction() as s:
            item = s.scalars(select(ContentItem).where(ContentItem.url.in_(forms))
                             .order_by(ContentItem.id)).first()
            return _record(item) if item else None

    def copies(self, md5: str | None, pdq_queries: np.ndarray | None, *,
               include_removed: bool = False,
               max_distance: int = PDQ_MATCH_DISTANCE) -> list[ContentRecord]:
        """Every registered item that is the same image: identical MD5 or PDQ within
        ``max_distance`` of any query hash."""
        self.sync()
        best = self.match.find(md5, pdq_queries, max_distance)
        with self.db.transaction() as s:
            out = []
            for chunk in chunks(list(best), 20_000):
                query = select(ContentItem).where(ContentItem.id.in_(chunk))
                if not include_removed:
                    query = query.where(ContentItem.removed_at.is_(None))
                out += [_record(item, best[item.id]) for item in s.scalars(query)]
        return sorted(out, key=lambda r: (r.distance or 0, r.content_id))

    def mark_removed(self, content_ids: Sequence[str], *, removed: bool = True) -> int:
        """Mark items removed from the platform (or, with ``removed=False``, restored)."""
        now = self._clock()
        with self.db.transaction() as s:
            items = s.scalars(select(ContentItem).where(
                ContentItem.content_id.in_(list(content_ids)),
                ContentItem.removed_at.is_(None) if removed
                else ContentItem.removed_at.is_not(None))).all()
            for item in items:
                item.removed_at = now if removed else None
            return len(items)

    def sync(self) -> int:
        """Load hash rows registered since the last sync (by any process)."""
        return self.match.sync()

    def close(self) -> None:
        """Save what was loaded since the last save (in memory, with an ``index_dir``),
        or release the engine."""
        self.match.close()

    @property
    def size(self) -> int:
        return self.match.size

    @property
    def watermark(self) -> int:
        """The highest content_hashes.id this process has applied (staleness: the newest
        one less this)."""
        return self.match.watermark


def _same_bytes(existing: ContentItem, hashes: EntryHashes) -> ContentRecord:
    if existing.md5 != (hashes.md5 or ""):
        raise ContentIdTaken(f"content id {existing.content_id!r} is already registered with "
                             "different bytes")
    return _record(existing)

