"""The likeness registry: enrol, change settings, withdraw, and match faces.

A person, through the platform (which verifies them and passes their account), enrols
their face from two or more photos. Only embeddings are kept, each sealed in the evidence
vault; the photos are decoded in the sandbox and dropped. Every change is a
``likeness_events`` row (audited), and that log is each replica's change feed: the
in-memory index is built at start and brought up to date before every match, so a
withdrawal anywhere ends protection everywhere on the next check.

Nothing here reveals who is enrolled to anyone but the person's own account: a match
carries an opaque enrolment id for the gate, and verdicts never name it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry.errors import Conflict, InvalidRequest, NotFound
from consentry.evidence import Vault
from consentry.likeness.index import FaceIndex, FaissFaceIndex
from consentry.policy.routing import ItemKind, Queue, routed
from consentry.signals.image import DecodedImage, ImageRejected
from consentry.signals.likeness import (
    EMBEDDING_DIM,
    FaceEmbedder,
    FaceEmbedding,
    LikenessPhotoRejected,
    face_distance,
)
from consentry.signals.sandbox import Sandbox
from consentry.store import Database
from consentry.store.feed import IdGaps
from consentry.store.models import (
    LikenessAttempt,
    LikenessEnrolment,
    LikenessEvent,
    LikenessFace,
)
from consentry.store.review import open_item

log = logging.getLogger(__name__)

# Two faces are the same person at or under this Euclidean distance between dlib
# descriptors. dlib states 0.6 for its model (99.38% on LFW); 0.5 is stricter, chosen from
# the false-match side. Measured by bench/bench_likeness.py on the photos that ship
# offline: false-match rate 0/100 different-person pairs (nearest 0.615) and 0/2000 pairs
# against 25x25 LFW faces (nearest 0.553); true-match rate 0.82 over 90 same-person pairs
# of transformed copies (median 0.17, furthest 0.81). The
# set is two people: see docs/likeness.md.
MATCH_DISTANCE: Final = 0.5
MIN_PHOTOS: Final = 2
MAX_PHOTOS: Final = 10
# Repeated attempts against one protected person open a review item.
REPEAT_ATTEMPTS: Final = 3
REPEAT_WINDOW: Final = timedelta(hours=24)
# Embeddings are kept for as long as the person wants protection (until withdrawal).
_KEEP_UNTIL: Final = datetime(2999, 1, 1, tzinfo=UTC)
_NEIGHBOURS: Final = 8  # faces per person are few; enough to see every enrolment near
_EVENT_PAGE: Final = 10_000
MODEL: Final = "dlib_face_recognition_resnet_model_v1"


class LikenessConflict(Conflict):
    code = "likeness_conflict"


class NotEnrolled(NotFound):
    code = "not_enrolled"


@dataclass(frozen=True)
class Enrolment:
    """A registry entry as its own account sees it (never the embeddings)."""

    id: str
    account: str
    status: str  # active | held | withdrawn | cleared | refused (the last two: settled)
    no_edits: bool
    never_sexualise: bool
    photo_count: int
    created_at: datetime
    updated_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, row: LikenessEnrolment) -> Enrolment:
        return cls(row.id, row.account_id, row.status, row.no_edits, True, row.photo_count,
                   row.created_at, row.updated_at, row.withdrawn_at)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "account": self.account, "status": self.status,
                "settings": {"never_sexualise": self.never_sexualise,
                             "no_edits": self.no_edits},
                "photo_count": self.photo_count, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None}


@dataclass(frozen=True)
class LikenessMatch:
    """An enrolled face found in an image: for the gate only (never shown)."""

    enrolment_id: str
    account: str
    no_edits: bool
    image: int  # the image's index in the request
    box: tuple[int, int, int, int]
    distance: float


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LikenessRegistry:
    """Enrolment, settings, withdrawal and matching. Thread-safe."""

    def __init__(self, db: Database, vault: Vault, sandbox: Sandbox, *,
                 embedder: FaceEmbedder | None = None, index: FaceIndex | None = None,
                 clock: Callable[[], datetime] = _utc_now, decode_timeout_s: float = 10.0,
                 ) -> None:
        self.db = db
        self._vault = vault
        self._sandbox = sandbox
        self._embedder = embedder
        self._clock = clock
        self._decode_timeout_s = decode_timeout_s
        self._lock = threading.RLock()
        self._index: FaceIndex = index or FaissFaceIndex()
        self._owner: dict[int, str] = {}  # face key -> enrolment id
        self._keys: dict[str, set[int]] = {}  # enrolment id -> face keys
        self._watermark = 0
        self._gaps = IdGaps()
        self._build()

    @property
    def embedder(self) -> FaceEmbedder:
        """The face models, loaded on first use."""
        with self._lock:
            if self._embedder is None:
                self._embedder = FaceEmbedder()
            return self._embedder

    # -- the person's own entry ---------------------------------------------------------

    def enrol(self, account: str, photos: Sequence[bytes], *, no_edits: bool = False,
              actor: str) -> Enrolment:
        """Enrol ``account``'s face from ``photos`` (each showing exactly one clear face,
        all the same person). A face already enrolled under another account is held for
        review (``LikenessConflict``, nothing protected yet), never merged."""
        if not MIN_PHOTOS <= len(photos) <= MAX_PHOTOS:
            raise InvalidRequest("photo_count", f"{len(photos)} photos sent; send between "
                                 f"{MIN_PHOTOS} and {MAX_PHOTOS} photos of the person's face",
                                 field="photos")
        faces = [self._enrolment_face(i, data) for i, data in enumerate(photos)]
        for i, face in enumerate(faces[1:], start=1):
            if face_distance(face.vector, faces[0].vector) > MATCH_DISTANCE:
                raise InvalidRequest("different_people", f"photo {i} shows a different "
                                     "person from photo 0; every photo must show the "
                                     "person enrolling", field=f"photos[{i}]")
        clash = self._enrolled_elsewhere(account, [f.vector for f in faces])
        now = self._clock()
        enrolment_id = f"lik_{secrets.token_hex(12)}"
        status = "held" if clash else "active"
        try:
            with self.db.transaction() as s:
                s.add(LikenessEnrolment(
                    id=enrolment_id, account_id=account, live_account=account, status=status,
                    no_edits=no_edits, photo_count=len(photos), created_at=now,
                    updated_at=now))
                s.flush()
                if clash:
                    # The embeddings are not kept: a reviewer settles who the face is, then
                    # the person enrols again.
                    r = routed(ItemKind.LIKENESS_DUPLICATE, Queue.GATE_REVIEW)
                    open_item(s, queue=r.queue, kind=r.kind, subject=enrolment_id,
                              account_id=account, clause=None, restricted=False,
                              has_media=False, priority=r.priority, due_at=now + r.sla,
                              now=now, details={"matches_enrolment": clash})
                else:
                    for position, face in enumerate(faces):
                        self._store_face(s, enrolment_id, position, face, actor)
                s.add(LikenessEvent(enrolment_id=enrolment_id,
                                    kind="held" if clash else "enrolled", actor=actor, at=now,
                                    details={"photos": len(photos), "no_edits": no_edits,
                                             **({"matches": clash} if clash else {})}))
        except IntegrityError:
            raise LikenessConflict(f"account {account!r} already has a likeness entry; "
                                   "change its settings or withdraw it first",
                                   code="already_enrolled") from None
        if clash:
            raise LikenessConflict(
                "this face is already enrolled under another account; the enrolment is "
                "held for review and protects nothing until a reviewer settles it",
                code="likeness_held_for_review",
                details={"enrolment": enrolment_id, "status": "held"})
        self.sync()
        return self.get(account)

    def get(self, account: str) -> Enrolment:
        """The account's live entry (active or held)."""
        with self.db.transaction() as s:
            row = self._live(s, account)
            return Enrolment.of(row)

    def change(self, account: str, *, no_edits: bool, actor: str) -> Enrolment:
        """Change the optional setting (*never sexualise me* is always on)."""
        now = self._clock()
        with self.db.transaction() as s:
            row = self._live(s, account, lock=True)
            if row.no_edits != no_edits:
                row.no_edits, row.updated_at = no_edits, now
                s.add(LikenessEvent(enrolment_id=row.id, kind="changed", actor=actor, at=now,
                                    details={"no_edits": no_edits}))
            enrolment = Enrolment.of(row)
        return enrolment

    def withdraw(self, account: str, *, actor: str) -> Enrolment:
        """End protection and erase every embedding at once (right to erasure): the
        database rows and vault items go in one transaction, the index entries before
        this returns; other replicas drop them on their next match."""
        now = self._clock()
        with self.db.transaction() as s:
            row = self._live(s, account, lock=True)
            self._erase(s, row, actor=actor, now=now, reason="likeness enrolment withdrawn")
            enrolment = Enrolment.of(row)
        with self._lock:
            self._drop(row.id)
        return enrolment

    def settle_held(self, enrolment_id: str, *, same_person: bool, actor: str) -> None:
        """A reviewer's answer to an enrolment held because its face was already enrolled
        under another account (review kind ``likeness_duplicate``).

        ``same_person``: the held account is the face's owner and the earlier enrolments it
        matched are not (an impostor, or an account the person lost): those are withdrawn,
        their embeddings erased, and the held entry is closed so that the person enrols
        again, now without a clash. Otherwise the held entry is refused and the earlier
        enrolment stands. Settling again the same way does nothing; ``NotEnrolled`` when
        the entry is not held (settled the other way, or unknown)."""
        now = self._clock()
        settled = "cleared" if same_person else "refused"
        with self.db.transaction() as s:
            held = s.scalars(select(LikenessEnrolment).where(
                LikenessEnrolment.id == enrolment_id).with_for_update()).first()
            if held is not None and held.status == settled:
                return  # settled so already (a decision retried after a failed commit)
            if held is None or held.status != "held":
                raise NotEnrolled(f"likeness entry {enrolment_id!r} is not held for review")
            earlier: list[str] = []
            if same_person:
                matched = s.scalars(select(LikenessEvent.details).where(
                    LikenessEvent.enrolment_id == enrolment_id,
                    LikenessEvent.kind == "held")).first() or {}
                for other in s.scalars(select(LikenessEnrolment).where(
                        LikenessEnrolment.id.in_(matched.get("matches", [])),
                        LikenessEnrolment.status == "active").with_for_update()):
                    self._erase(s, other, actor=actor, now=now,
                                reason="likeness enrolment withdrawn by review",
                                details={"review_of": enrolment_id})
                    earlier.append(other.id)
            held.status = settled
            held.live_account, held.updated_at = None, now
            s.add(LikenessEvent(enrolment_id=held.id, kind=held.status, actor=actor, at=now,
                                details={"withdrawn": earlier}))
        with self._lock:
            for other_id in earlier:
                self._drop(other_id)

    def _erase(self, s: Session, row: LikenessEnrolment, *, actor: str, now: datetime,
               reason: str, details: dict[str, Any] | None = None) -> None:
        """Withdraw ``row``: its embeddings and their vault items deleted, audited."""
        faces = list(s.scalars(select(LikenessFace).where(
            LikenessFace.enrolment_id == row.id)))
        evidence = [f.evidence_id for f in faces]
        for face in faces:
            s.delete(face)
        s.flush()  # the faces refer to the vault items
        self._vault.erase(s, evidence, actor=actor, reason=reason)
        row.status, row.live_account = "withdrawn", None
        row.withdrawn_at = row.updated_at = now
        s.add(LikenessEvent(enrolment_id=row.id, kind="withdrawn", actor=actor, at=now,
                            details={"embeddings_erased": len(faces), **(details or {})}))

    # -- matching -------------------------------------------------------------------------

    def match(self, image: DecodedImage, index: int,
              boxes: tuple[tuple[int, int, int, int], ...]) -> list[LikenessMatch]:
        """Enrolled people among the faces at ``boxes`` (found by the gate's analysis),
        the closest enrolment per face."""
        self.sync()
        if not boxes or not len(self._index):
            return []  # nothing enrolled: no face model time
        return self._matches(index, self.embedder.embed_boxes(image, boxes))

    def nearest(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The closest enrolment to a face within ``MATCH_DISTANCE``, with its distance."""
        for n in self._index.nearest(vector, _NEIGHBOURS):
            if n.distance > MATCH_DISTANCE:
                break
            if (owner := self._owner.get(n.key)) is not None:
                return owner, n.distance
        return None

    def record_attempt(self, enrolment_id: str, check_id: str, account: str | None) -> bool:
        """Count a refused attempt against a protected person; the ``REPEAT_ATTEMPTS``th
        in ``REPEAT_WINDOW`` opens a review item (the person is named only by the opaque
        enrolment id). True when an item is open for it."""
        now = self._clock()
        with self.db.transaction() as s:
            s.add(LikenessAttempt(enrolment_id=enrolment_id, check_id=check_id,
                                  account_id=account, at=now))
            s.flush()
            recent = s.scalar(select(func.count()).select_from(LikenessAttempt).where(
                LikenessAttempt.enrolment_id == enrolment_id,
                LikenessAttempt.at > now - REPEAT_WINDOW)) or 0
            if recent < REPEAT_ATTEMPTS:
                return False
            r = routed(ItemKind.LIKENESS_ATTEMPTS, Queue.GATE_REVIEW)
            open_item(s, queue=r.queue, kind=r.kind, subject=enrolment_id, account_id=account,
                      clause="II-1", restricted=False, has_media=False, priority=r.priority,
                      due_at=now + r.sla, now=now,
                      details={"attempts_24h": recent, "latest_check": check_id})
            return True

    def __len__(self) -> int:
        """How many faces the in-memory index holds."""
        return len(self._index)

    # -- keeping the index current ------------------------------------------------------

    def sync(self) -> int:
        """Apply registry events committed since the last sync; returns how many."""
        with self._lock:
            applied = 0
            late: list[Any] = []
            columns = (LikenessEvent.id, LikenessEvent.enrolment_id)
            if awaited := self._gaps.awaited():
                with self.db.transaction() as s:
                    late = list(s.execute(select(*columns).where(
                        LikenessEvent.id.in_(awaited))))
                self._gaps.found(e.id for e in late)
            while True:
                with self.db.transaction() as s:
                    events = late + list(s.execute(
                        select(*columns).where(LikenessEvent.id > self._watermark)
                        .order_by(LikenessEvent.id).limit(_EVENT_PAGE)))
                late = []
                if not events:
                    return applied
                self._gaps.saw(self._watermark, [e.id for e in events
                                                 if e.id > self._watermark])
                self._refresh({e.enrolment_id for e in events})
                self._watermark = max(self._watermark, events[-1].id)
                applied += len(events)

    def _build(self) -> None:
        with self.db.transaction() as s:
            # The high-water mark first: events after it are replayed afterwards.
            self._watermark = s.scalar(select(func.max(LikenessEvent.id))) or 0
            live = list(s.scalars(select(LikenessEnrolment.id).where(
                LikenessEnrolment.status == "active")))
        for start in range(0, len(live), 1000):
            self._refresh(set(live[start:start + 1000]))
        self.sync()

    def _refresh(self, enrolment_ids: set[str]) -> None:
        """Make the index hold exactly the faces of these enrolments that are active
        (desired state, not deltas: replays are idempotent)."""
        with self.db.transaction() as s:
            rows = s.execute(select(LikenessFace.id, LikenessFace.enrolment_id,
                                    LikenessFace.evidence_id)
                             .join(LikenessEnrolment,
                                   LikenessEnrolment.id == LikenessFace.enrolment_id)
                             .where(LikenessFace.enrolment_id.in_(enrolment_ids),
                                    LikenessEnrolment.status == "active")).all()
            sealed = self._vault.contents(s, [r.evidence_id for r in rows])
        for enrolment_id in enrolment_ids:
            self._drop(enrolment_id)
        rows = [r for r in rows if r.evidence_id in sealed]
        if not rows:
            return
        keys = np.array([r.id for r in rows], dtype=np.int64)
        vectors = np.stack([np.frombuffer(sealed[r.evidence_id], dtype=np.float32)
                            for r in rows])
        self._index.add(keys, vectors)
        for r in rows:
            self._owner[r.id] = r.enrolment_id
            self._keys.setdefault(r.enrolment_id, set()).add(r.id)

    def _drop(self, enrolment_id: str) -> None:
        keys = self._keys.pop(enrolment_id, set())
        if keys:
            self._index.remove(np.array(sorted(keys), dtype=np.int64))
            for key in keys:
                self._owner.pop(key, None)

    # -- inside ---------------------------------------------------------------------------

    def _enrolment_face(self, i: int, data: bytes) -> FaceEmbedding:
        try:
            decoded = self._sandbox.decode(data, timeout_s=self._decode_timeout_s)
            return self.embedder.embed_enrolment_photo(decoded)
        except (ImageRejected, LikenessPhotoRejected) as exc:
            raise InvalidRequest(exc.code, f"photo {i}: {exc}", field=f"photos[{i}]",
                                 too_large=getattr(exc, "too_large", False)) from exc

    def _enrolled_elsewhere(self, account: str, vectors: list[np.ndarray]) -> list[str]:
        """Enrolments of other accounts that any of these faces matches."""
        self.sync()
        found = {hit[0] for v in vectors if (hit := self.nearest(v)) is not None}
        if not found:
            return []
        with self.db.transaction() as s:
            return sorted(s.scalars(select(LikenessEnrolment.id).where(
                LikenessEnrolment.id.in_(found), LikenessEnrolment.account_id != account)))

    def _matches(self, index: int, faces: list[FaceEmbedding]) -> list[LikenessMatch]:
        nearest = [(face, hit) for face in faces if (hit := self.nearest(face.vector))]
        if not nearest:
            return []
        with self.db.transaction() as s:
            live = {r.id: r for r in s.scalars(select(LikenessEnrolment).where(
                LikenessEnrolment.id.in_({hit[0] for _, hit in nearest}),
                LikenessEnrolment.status == "active"))}
            return [LikenessMatch(hit[0], live[hit[0]].account_id, live[hit[0]].no_edits,
                                  index, face.box, round(hit[1], 4))
                    for face, hit in nearest if hit[0] in live]

    def _store_face(self, s: Session, enrolment_id: str, position: int, face: FaceEmbedding,
                    actor: str) -> None:
        vector = np.asarray(face.vector, dtype=np.float32)
        assert vector.shape == (EMBEDDING_DIM,)
        evidence_id = self._vault.seal(
            s, subject_kind="likeness", subject=enrolment_id, content=vector.tobytes(),
            metadata={"enrolment": enrolment_id, "model": MODEL, "position": position},
            position=position, actor=actor, retain_until=_KEEP_UNTIL)
        s.add(LikenessFace(enrolment_id=enrolment_id, evidence_id=evidence_id))

    def _live(self, s: Session, account: str, *, lock: bool = False) -> LikenessEnrolment:
        query = select(LikenessEnrolment).where(LikenessEnrolment.live_account == account)
        row = s.scalars(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotEnrolled(f"account {account!r} has no likeness entry")
        return row
