"""The prompt bank: block once, block everywhere, for words.

A reviewer who confirms a missed or refused request can add its text to the bank with
the clause it breaks; its vector (the semantic layer's encoder) is kept beside it, and
every later request the cascade reads whose vector is at least ``threshold`` similar is
refused under that clause, in any language the encoder covers. Entries carry their
author and reason and can be disabled and enabled again (recorded with who and why),
like hash bank entries; they are never deleted.

Replicas share the bank through the database: each keeps the active entries in memory
and reloads them when the bank has changed (checked at most once a second).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select

from consentry.errors import InvalidRequest, NotFound
from consentry.store import Database
from consentry.store.models import PromptBankEntry

CLAUSES = ("CS-1", "II-1", "II-2", "SX-1")
MAX_TEXT = 4000
THRESHOLD = 0.80  # cosine similarity of a near paraphrase
_RELOAD_S = 1.0


@dataclass(frozen=True)
class BankEntryView:
    id: int
    text: str
    clause: str
    author: str
    reason: str
    source_check: str | None
    enabled: bool
    created_at: datetime
    changed_at: datetime
    changed_by: str
    change_reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "clause": self.clause,
                "author": self.author, "reason": self.reason,
                "source_check": self.source_check,
                "status": "active" if self.enabled else "disabled",
                "created_at": self.created_at.isoformat(),
                "changed_at": self.changed_at.isoformat(), "changed_by": self.changed_by,
                "change_reason": self.change_reason}


@dataclass(frozen=True)
class BankHit:
    entry: int
    text: str
    clause: str
    similarity: float


class PromptBankIndex:
    """The active entries as a matrix, for one look-up per request."""

    def __init__(self, ids: list[int], texts: list[str], clauses: list[str],
                 vectors: np.ndarray) -> None:
        self.ids, self.texts, self.clauses, self.vectors = ids, texts, clauses, vectors

    def nearest(self, vector: np.ndarray, threshold: float = THRESHOLD) -> BankHit | None:
        """The most similar active entry, if it is at least ``threshold`` similar."""
        if not self.ids:
            return None
        sims = self.vectors @ vector
        i = int(np.argmax(sims))
        if float(sims[i]) < threshold:
            return None
        return BankHit(self.ids[i], self.texts[i], self.clauses[i], round(float(sims[i]), 4))


EMPTY = PromptBankIndex([], [], [], np.zeros((0, 0), dtype=np.float32))


class PromptBank:
    """The bank in the database, with an in-memory index of its active entries."""

    def __init__(self, db: Database, encode: Callable[[str], np.ndarray], encoder_name: str,
                 *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._encode = encode
        self._encoder = encoder_name
        self._clock = clock or (lambda: datetime.now(UTC))
        self._index = EMPTY
        self._seen: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def add(self, text: str, clause: str, *, author: str, reason: str,
            source_check: str | None = None) -> BankEntryView:
        """Add a phrasing; refused from the next request on."""
        text = (text or "").strip()
        if not text or len(text) > MAX_TEXT:
            raise InvalidRequest("invalid_text", f"the text must be 1-{MAX_TEXT} characters",
                                 field="text")
        if clause not in CLAUSES:
            raise InvalidRequest("invalid_clause", f"clause must be one of {', '.join(CLAUSES)}",
                                 field="clause")
        if not (reason or "").strip():
            raise InvalidRequest("missing_reason", "say why this phrasing is abuse",
                                 field="reason")
        vector = np.asarray(self._encode(text), dtype="<f4")
        now = self._clock()
        with self.db.transaction() as session:
            row = PromptBankEntry(text=text, clause=clause, vector=vector.tobytes(),
                                  encoder=self._encoder, author=author, reason=reason.strip(),
                                  source_check=source_check, created_at=now, enabled=True,
                                  changed_at=now, changed_by=author, change_reason="added")
            session.add(row)
            session.flush()
            view = _view(row)
        self._seen = None  # reload on the next look-up
        return view

    def set_enabled(self, entry_id: int, enabled: bool, *, actor: str,
                    reason: str = "") -> BankEntryView:
        """Disable an entry (it stops matching) or enable it again."""
        with self.db.transaction() as session:
            row = session.get(PromptBankEntry, entry_id)
            if row is None:
                raise NotFound(f"no prompt bank entry {entry_id}")
            row.enabled = enabled
            row.changed_at = self._clock()
            row.changed_by = actor
            row.change_reason = reason
            view = _view(row)
        self._seen = None
        return view

    def entries(self, *, after: int = 0, limit: int = 100) -> list[BankEntryView]:
        with self.db.transaction() as session:
            rows = session.scalars(select(PromptBankEntry).where(PromptBankEntry.id > after)
                                   .order_by(PromptBankEntry.id).limit(limit)).all()
            return [_view(r) for r in rows]

    def index(self) -> PromptBankIndex:
        """The active entries, reloaded when the bank changed (checked once a second)."""
        now = time.monotonic()
        if self._seen is not None and now - self._checked < _RELOAD_S:
            return self._index
        with self._lock:
            with self.db.transaction() as session:
                state = tuple(session.execute(select(
                    func.count(PromptBankEntry.id), func.max(PromptBankEntry.id),
                    func.max(PromptBankEntry.changed_at))).one())
                if state != self._seen:
                    rows = session.execute(
                        select(PromptBankEntry.id, PromptBankEntry.text,
                               PromptBankEntry.clause, PromptBankEntry.vector)
                        .where(PromptBankEntry.enabled.is_(True),
                               PromptBankEntry.encoder == self._encoder)
                        .order_by(PromptBankEntry.id)).all()
                    vectors = (np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows])
                               if rows else np.zeros((0, 0), dtype=np.float32))
                    self._index = PromptBankIndex([r.id for r in rows], [r.text for r in rows],
                                                  [r.clause for r in rows],
                                                  vectors.astype(np.float32))
                    self._seen = state
            self._checked = now
        return self._index


def _view(row: PromptBankEntry) -> BankEntryView:
    return BankEntryView(row.id, row.text, row.clause, row.author, row.reason,
                         row.source_check, row.enabled, row.created_at, row.changed_at,
                         row.changed_by, row.change_reason)
