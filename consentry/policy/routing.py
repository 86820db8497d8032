"""Which decisions a person must look at, in which queue, and how soon. Pure.

Automation decides most requests. These go to people: what the gate holds (``review``),
refusals that rest on image analysis alone (no known-hash match), CS-1 suspensions
awaiting a child-safety reviewer's confirmation (POLICY.md: within 24 hours), open takedown
cases, notices of child sexual abuse material, and every appeal. Child-safety items
(CS-1, KM-1, CSAM notices) are restricted: only child-safety reviewers and admins see
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from consentry.policy.evaluate import Ruling

CHILD_SAFETY_CLAUSES: Final = frozenset({"CS-1", "KM-1"})
# Intimate images of real people: their evidence keeps hashes and metadata only, once
# the decision can no longer change (the image bytes are not kept longer than needed).
NCII_CLAUSES: Final = frozenset({"II-1", "II-2", "II-3"})


class Queue(StrEnum):
    TAKEDOWNS = "takedowns"
    CHILD_SAFETY = "child_safety"  # restricted
    GATE_REVIEW = "gate_review"
    IMAGE_REFUSALS = "image_refusals"
    APPEALS = "appeals"
    HASH_DISPUTES = "hash_disputes"
    LEADS = "leads"  # escalated to a lead


class ItemKind(StrEnum):
    REVIEW_VERDICT = "review_verdict"  # the gate held a request
    IMAGE_REFUSAL = "image_refusal"  # an upload or output refused by image analysis alone
    CS1_CONFIRMATION = "cs1_confirmation"  # a CS-1 suspension to confirm or lift
    TAKEDOWN_CASE = "takedown_case"  # an open takedown case
    CSAM_NOTICE = "csam_notice"  # a takedown notice reporting child sexual abuse material
    APPEAL = "appeal"  # an affected user contests a restriction
    HASH_DISPUTE = "hash_dispute"  # an upload appealed as a false known-hash match
    # Likeness registry: a face enrolled again under another account, and repeated
    # attempts against one protected person.
    LIKENESS_DUPLICATE = "likeness_duplicate"
    LIKENESS_ATTEMPTS = "likeness_attempts"


@dataclass(frozen=True)
class Routing:
    queue: Queue
    kind: ItemKind
    sla: timedelta  # how soon a person must decide
    priority: int  # lower first, within a queue
    restricted: bool = False
    has_media: bool = False


# How soon each kind must be decided (takedown cases carry their own legal deadline).
SLA: Final[dict[ItemKind, timedelta]] = {
    ItemKind.CS1_CONFIRMATION: timedelta(hours=24),  # POLICY.md, CS-1
    ItemKind.CSAM_NOTICE: timedelta(hours=24),
    ItemKind.REVIEW_VERDICT: timedelta(hours=24),  # the user is waiting for their image
    ItemKind.IMAGE_REFUSAL: timedelta(hours=48),
    ItemKind.TAKEDOWN_CASE: timedelta(hours=48),
    ItemKind.HASH_DISPUTE: timedelta(days=3),
    ItemKind.APPEAL: timedelta(days=7),
    ItemKind.LIKENESS_DUPLICATE: timedelta(days=3),  # the person is waiting to enrol
    ItemKind.LIKENESS_ATTEMPTS: timedelta(hours=48),
}
_PRIORITY: Final[dict[ItemKind, int]] = {
    ItemKind.CS1_CONFIRMATION: 0, ItemKind.CSAM_NOTICE: 0, ItemKind.TAKEDOWN_CASE: 1,
    ItemKind.REVIEW_VERDICT: 2, ItemKind.IMAGE_REFUSAL: 3, ItemKind.HASH_DISPUTE: 4,
    ItemKind.APPEAL: 4, ItemKind.LIKENESS_DUPLICATE: 3, ItemKind.LIKENESS_ATTEMPTS: 2,
}


def routed(kind: ItemKind, queue: Queue, *, restricted: bool = False,
           has_media: bool = False) -> Routing:
    return Routing(queue, kind, SLA[kind], _PRIORITY[kind], restricted, has_media)


def route_check(ruling: Ruling, *, pending_review: bool, image_only: bool,
                has_media: bool) -> Routing | None:
    """Where a gate decision goes for a person, if anywhere. ``image_only``: a refusal of
    an upload or output that rests on image analysis, not on a known-hash match."""
    if pending_review:
        return routed(ItemKind.CS1_CONFIRMATION, Queue.CHILD_SAFETY, restricted=True,
                      has_media=has_media)
    if ruling.decision == "review":
        return routed(ItemKind.REVIEW_VERDICT, Queue.GATE_REVIEW, has_media=has_media)
    if ruling.decision == "block" and image_only and ruling.clause not in {"FC-1", "EN-1"}:
        restricted = ruling.clause in CHILD_SAFETY_CLAUSES
        return routed(ItemKind.IMAGE_REFUSAL,
                      Queue.CHILD_SAFETY if restricted else Queue.IMAGE_REFUSALS,
                      restricted=restricted, has_media=has_media)
    return None


def route_appeal(clause: str | None, *, known_match: bool, has_media: bool) -> Routing:
    """An appeal goes to people who did not make the decision: child-safety reviewers for
    CS-1 and KM-1, the hash-dispute queue when the refusal rests on a known-hash match."""
    restricted = clause in CHILD_SAFETY_CLAUSES
    kind = ItemKind.HASH_DISPUTE if known_match else ItemKind.APPEAL
    if restricted:
        return routed(kind, Queue.CHILD_SAFETY, restricted=True, has_media=has_media)
    queue = Queue.HASH_DISPUTES if known_match else Queue.APPEALS
    return routed(kind, queue, has_media=has_media)
