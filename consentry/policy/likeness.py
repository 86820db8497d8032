"""What the likeness registry adds to a ruling. Pure: no I/O.

A face in the request that matches someone else's enrolment is a protected likeness:
any sexualising request or output showing it is refused under II-1, however mild the
wording (*never sexualise me* is always on), and where the person asked for it, any edit
of a photo showing it is refused under LR-1. The requester's own enrolled face is consent
on record and is handled by ``evaluate`` itself (``consented``). Reasons say that a
protected likeness was found, never whose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from consentry.policy.evaluate import Ruling
from consentry.policy.reasons import Reason, ReasonCode

# More severe or not about content: left as they are.
_KEEP: Final = frozenset({"CS-1", "KM-1", "II-3", "FC-1", "EN-1"})
_SEXUALISING_CLAUSES: Final = frozenset({"II-1", "II-2", "SX-1", "RV-1"})
_SEXUALISING_CODES: Final = frozenset({ReasonCode.SEXUALISING_REQUEST,
                                       ReasonCode.SEMANTIC_MATCH,
                                       ReasonCode.PROMPT_BANK_MATCH,
                                       ReasonCode.INTIMATE_INPUT_IMAGE})
_MINOR_CODES: Final = frozenset({ReasonCode.MINOR_CUE, ReasonCode.FACE_UNDER_CHALLENGE_AGE})


@dataclass(frozen=True)
class ProtectedFace:
    """A face in the request that matches an enrolment of another account."""

    image: int
    box: tuple[int, int, int, int]
    no_edits: bool


def sexualising(ruling: Ruling) -> bool:
    """Whether the ruling found the request or image sexualising (even mildly)."""
    return (ruling.clause in _SEXUALISING_CLAUSES or ruling.label is not None
            or any(r.code in _SEXUALISING_CODES for r in ruling.reasons))


def protect(ruling: Ruling, faces: Sequence[ProtectedFace], *, edit: bool) -> Ruling:
    """The ruling with protected likenesses applied. ``edit``: the check edits a photo
    (a generation request with input images, or the output of one)."""
    if not faces or ruling.clause in _KEEP:
        return ruling
    if ruling.decision == "review" and any(r.code in _MINOR_CODES for r in ruling.reasons):
        # A hold over a possible minor is already refused until a person looks, and that
        # person may find CS-1: an II-1 block would drop the minor evidence and the review.
        return ruling
    if sexualising(ruling):
        found = tuple(_reason(f, "never_sexualise") for f in faces)
        evidence = tuple(r for r in ruling.reasons if r.code in _SEXUALISING_CODES
                         or r.code is ReasonCode.REAL_PERSON_REFERENCE)
        return Ruling("block", "II-1", (*found, *evidence))
    no_edits = [f for f in faces if f.no_edits]
    if edit and no_edits:
        return Ruling("block", "LR-1", tuple(_reason(f, "no_edits") for f in no_edits))
    return ruling


def _reason(face: ProtectedFace, setting: str) -> Reason:
    what = ("has asked not to be sexualised" if setting == "never_sexualise"
            else "has asked that others do not edit images of them")
    return Reason(ReasonCode.PROTECTED_LIKENESS,
                  f"image {face.image} shows a person whose likeness is protected: they "
                  f"{what}", kind=setting, image=face.image, face_box=face.box)
