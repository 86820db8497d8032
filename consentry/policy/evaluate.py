"""The decision core: findings in, ruling out. Pure: no I/O, no clock, no database.

The order of the rules is the order of severity, so the first rule that holds decides
the clause. Every ruling lists the findings that led to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from consentry.policy.document import Decision, Policy
from consentry.policy.provenance import ai_generated_reasons
from consentry.policy.reasons import Reason, ReasonCode
from consentry.signals.findings import (
    BenignCue,
    Concept,
    ImageFindings,
    PersonCue,
    PromptFindings,
)
from consentry.signals.provenance import ProvenanceFindings
from consentry.signals.semantic import SemanticFinding

# Concepts that sexualise whoever is shown; alone they are SX-1 material for fictional
# people. Revealing clothing, sheer fabric and "sexy" are fine on a fictional adult.
_EXPLICIT = frozenset(
    {Concept.NUDITY, Concept.UNDRESS, Concept.SEXUAL_POSE, Concept.SEXUAL_ACT, Concept.NSFW}
)
# Mild concepts that a benign cue can neutralise ("a swimsuit on the mannequin").
_NEUTRALISABLE = frozenset({Concept.REVEALING, Concept.SUGGESTIVE, Concept.SHEER})
_NEUTRALISING_CUES = frozenset({BenignCue.OBJECT_TARGET, BenignCue.CLOTHED})
# Cues that identify a real person without a photo.
_IDENTIFYING_CUES = frozenset({PersonCue.NAME, PersonCue.HANDLE, PersonCue.RELATION})


_CONCEPT_WORDS = {
    Concept.SUGGESTIVE: "a sexualised look",
    Concept.REVEALING: "revealing clothing (swimwear, underwear or similar)",
    Concept.SHEER: "see-through or wet clothing",
    Concept.UNDRESS: "clothing to be removed or reduced",
    Concept.NUDITY: "nudity",
    Concept.SEXUAL_POSE: "a sexual pose",
    Concept.SEXUAL_ACT: "a sexual act",
    Concept.NSFW: "an explicit version",
}


class MinorEvidence(StrEnum):
    """How sure the minor finding is; enforcement treats an age estimate with care."""

    STATED = "stated"  # the prompt says so (words, ages, school years)
    ESTIMATED = "estimated"  # a face looks under 18
    CHALLENGE_AGE = "challenge_age"  # a face looks under the challenge age, not under 18


@dataclass(frozen=True)
class Ruling:
    decision: Decision
    clause: str
    reasons: tuple[Reason, ...]
    label: str | None = None
    minor_evidence: MinorEvidence | None = None


def _sexual_reasons(prompt: PromptFindings, concepts: frozenset[Concept]) -> list[Reason]:
    return [
        Reason(
            ReasonCode.SEXUALISING_REQUEST,
            f"the request asks for {_CONCEPT_WORDS[f.concept]}",
            kind=f.concept.value,
            span=f.span,
            rule=f.rule,
        )
        for f in prompt.sexual
        if f.concept in concepts
    ]


def _minor_reasons(prompt: PromptFindings) -> list[Reason]:
    return [
        Reason(
            ReasonCode.MINOR_CUE,
            "the request refers to someone who is or may be under 18",
            kind=f.cue.value,
            span=f.span,
            rule=f.rule,
            stated_age=f.age,
        )
        for f in prompt.minors
        if f.age is None or f.age < 18
    ]


def _young_faces(images: Sequence[ImageFindings], policy: Policy) -> list[Reason]:
    return [
        Reason(
            ReasonCode.FACE_UNDER_CHALLENGE_AGE,
            f"a face in image {img.index} looks about {face.age}, under the challenge age "
            f"of {policy.challenge_age}",
            image=img.index,
            face_box=face.box,
            estimated_age=face.age,
        )
        for img in images
        for face in img.faces
        if face.age < policy.challenge_age
    ]


def _faces(images: Sequence[ImageFindings]) -> list[Reason]:
    return [
        Reason(
            ReasonCode.REAL_PERSON_IN_PHOTO,
            f"image {img.index} shows a real person",
            image=img.index,
            face_box=face.box,
            estimated_age=face.age,
        )
        for img in images
        for face in img.faces
    ]


def _person_refs(prompt: PromptFindings, cues: frozenset[PersonCue]) -> list[Reason]:
    return [
        Reason(
            ReasonCode.REAL_PERSON_REFERENCE,
            "the request points at a real person",
            kind=f.cue.value,
            span=f.span,
            rule=f.rule,
        )
        for f in prompt.persons
        if f.cue in cues
    ]


def _intimate_inputs(images: Sequence[ImageFindings], policy: Policy) -> list[Reason]:
    return [
        Reason(
            ReasonCode.INTIMATE_INPUT_IMAGE,
            f"image {img.index} already looks intimate (nudity score {img.nsfw:.2f})",
            image=img.index,
            score=round(img.nsfw, 4),
        )
        for img in images
        if img.nsfw >= policy.thresholds.intimate_image
    ]


def _semantic_reasons(semantic: Sequence[SemanticFinding]) -> list[Reason]:
    return [
        Reason(
            ReasonCode.SEMANTIC_MATCH,
            f"the request means much the same as \u201c{f.exemplar}\u201d "
            f"({f.similarity:.2f} similar; nearest ordinary request "
            f"{f.benign_similarity:.2f})",
            kind=f.concept.value, rule=f"exemplar:{f.source}", exemplar=f.exemplar,
            similarity=f.similarity,
        )
        for f in semantic
    ]


def evaluate(
    prompt: PromptFindings,
    images: Sequence[ImageFindings],
    policy: Policy,
    *,
    allow_adult_content: bool = False,
    semantic: Sequence[SemanticFinding] = (),
    consented: frozenset[FaceRef] = frozenset(),
) -> Ruling:
    """Decide a generation request from its prompt and input-image findings.

    ``semantic``: what the semantic layer found the request to mean. It is evidence of
    a lower order than a lexicon finding: on its own it refuses a request about a real
    person only when ``strong``, holds it for review otherwise, and never suspends an
    account (with a minor it holds the request for a child-safety review, RV-1).

    ``consented``: faces (image index, box) that are the requester's own, verified by the
    likeness registry: consent on record, so II-1 does not apply to them (CS-1 and SX-1
    still do).
    """
    concepts = prompt.concepts
    if prompt.benign_cues() & _NEUTRALISING_CUES:
        # "a swimsuit on the mannequin", "fully clothed": mild words lose their force,
        # explicit ones never do.
        concepts = concepts - _NEUTRALISABLE
    sexual = _sexual_reasons(prompt, concepts)
    meaning_only = not sexual and bool(semantic)
    if meaning_only:
        strong = [f for f in semantic if f.strong]
        sexual = _semantic_reasons(strong or semantic)
        # A weak match is uncertain evidence: it weighs as a mild concept.
        concepts = frozenset(f.concept for f in strong) or frozenset({Concept.SUGGESTIVE})
    intimate_inputs = _intimate_inputs(images, policy)
    sexualising = bool(sexual) or bool(intimate_inputs)

    # CS-1: any sexualisation involving a minor, stated or apparent.
    stated_minor = _minor_reasons(prompt)
    young = _young_faces(images, policy)
    if meaning_only and not intimate_inputs and (stated_minor or young):
        # Meaning alone never suspends an account: a child-safety reviewer decides.
        return Ruling("review", "RV-1", (*stated_minor, *young, *sexual))
    if sexualising and stated_minor:
        return Ruling(
            "block", "CS-1", (*stated_minor, *sexual, *intimate_inputs), None,
            MinorEvidence.STATED,
        )
    if sexualising and young:
        under_18 = any(r.estimated_age < policy.estimated_minor_age for r in young)  # type: ignore[operator]
        evidence = MinorEvidence.ESTIMATED if under_18 else MinorEvidence.CHALLENGE_AGE
        return Ruling("block", "CS-1", (*young, *sexual, *intimate_inputs), None, evidence)

    # II-1: a sexualising edit of a photo of a real person.
    if images:
        faces, own = _split_consented(_faces(images), consented)
        # In a photo of the requester, "her" or "this woman" is the requester.
        pointers = _person_refs(prompt, _IDENTIFYING_CUES if own and not faces
                                else frozenset(PersonCue))
        real_person = faces or pointers
        if real_person and sexual:
            if concepts <= {Concept.SUGGESTIVE}:
                # "make him look hot": real but uncertain evidence goes to a human.
                return Ruling("review", "RV-1", (*faces, *pointers, *sexual))
            return Ruling("block", "II-1", (*faces, *pointers, *sexual))
        if faces and intimate_inputs:
            # An intimate photo of a real person is being edited: consent cannot be seen.
            return Ruling("review", "RV-1", (*faces, *intimate_inputs))
        if sexual and not (concepts & _EXPLICIT) and not own:
            # Revealing edit of a photo where no one could be found: a person may still be
            # there (turned away, cropped face), so a human decides.
            return Ruling("review", "RV-1", tuple(sexual))

    # II-2: a sexualised depiction of a named or pointed-at real person.
    identified = _person_refs(prompt, _IDENTIFYING_CUES)
    if identified and sexual:
        if meaning_only and concepts <= {Concept.SUGGESTIVE}:
            return Ruling("review", "RV-1", (*identified, *sexual))
        return Ruling("block", "II-2", (*identified, *sexual))

    # SX-1: explicit content with no real person involved.
    explicit = [r for r in sexual if r.kind in _EXPLICIT and r.kind in concepts]
    explicit += intimate_inputs
    if explicit:
        if allow_adult_content:
            clause = policy.clause("SX-1")
            reason = Reason(ReasonCode.ADULT_CONTENT_ALLOWED, "explicit content of fictional "
                            "adults is allowed on this platform for verified adults")
            return Ruling("allow", "SX-1", (*explicit, reason), clause.allowed_label)
        return Ruling("block", "SX-1", tuple(explicit))

    benign = [
        Reason(ReasonCode.BENIGN_CONTEXT, "context shows the request is not sexual",
               kind=f.cue.value, span=f.span, rule=f.rule)
        for f in prompt.benign
    ]
    # Faces are listed on an allow too: an output check later needs to know the request
    # edited a photo of a real person.
    return Ruling("allow", "OK-1", (*_faces(images), *_consent(images, consented), *benign))


FaceRef = tuple[int, tuple[int, int, int, int]]  # (image index, face box)


def _split_consented(faces: list[Reason], consented: frozenset[FaceRef],
                     ) -> tuple[list[Reason], list[Reason]]:
    """Faces of others, and the requester's own (consent on record)."""
    own = [r for r in faces if (r.image, r.face_box) in consented]
    return [r for r in faces if (r.image, r.face_box) not in consented], own


def _consent(images: Sequence[ImageFindings], consented: frozenset[FaceRef]) -> list[Reason]:
    return [Reason(ReasonCode.CONSENT_ON_RECORD, f"a face in image {image} is the "
                   "requester's own, verified by the likeness registry", image=image,
                   face_box=box)
            for image, box in sorted(consented) if image < len(images)]


@dataclass(frozen=True)
class KnownMatch:
    """A bank match as the policy sees it (the bank layer sits above the policy)."""

    bank: str
    category: str
    clause: str
    entry_id: int
    signal: str
    distance: int


_CLAUSE_SEVERITY = ("KM-1", "CS-1", "II-3", "II-1", "II-2", "SX-1")


def _match_reason(m: KnownMatch) -> Reason:
    how = "identical file" if m.signal == "md5" else f"PDQ distance {m.distance}"
    return Reason(ReasonCode.HASH_MATCH, f"matches entry {m.entry_id} of bank {m.bank} ({how})",
                  kind=m.category, bank=m.bank, entry=m.entry_id, distance=m.distance,
                  rule=f"{m.signal}")


def provenance_can_decide(image: ImageFindings, policy: Policy) -> bool:
    """Whether AI-generation evidence can change an image's ruling: only an intimate image
    that shows a face (II-2 instead of SX-1 or RV-1). Elsewhere reading the watermark
    (0.4 s of CPU) would change nothing."""
    return bool(image.faces) and image.nsfw >= policy.thresholds.intimate_image


def evaluate_media(
    matches: Sequence[KnownMatch],
    image: ImageFindings,
    policy: Policy,
    *,
    real_person_source: bool = False,
    allow_adult_content: bool = False,
    consented: frozenset[FaceRef] = frozenset(),
    provenance: ProvenanceFindings | None = None,
) -> Ruling:
    """Decide an uploaded image or a generated output from its bank matches and analysis.

    ``real_person_source``: the output was generated from a photo of a real person.
    ``consented``: faces that are the requester's own (see ``evaluate``).
    ``provenance``: the image's manifest and watermark; an AI-generated image of a real
    person, sexualised, is a deepfake (II-2).
    """
    # Known abuse first: a block-bank match decides, most severe clause first.
    for clause_id in _CLAUSE_SEVERITY:
        hits = [m for m in matches if m.clause == clause_id]
        if hits:
            return Ruling("block", clause_id, tuple(_match_reason(m) for m in hits))

    intimate = _intimate_inputs([image], policy)
    if not intimate:
        return Ruling("allow", "OK-1", ())
    young = _young_faces([image], policy)
    if young:
        under_18 = any(r.estimated_age < policy.estimated_minor_age for r in young)  # type: ignore[operator]
        evidence = MinorEvidence.ESTIMATED if under_18 else MinorEvidence.CHALLENGE_AGE
        return Ruling("block", "CS-1", (*young, *intimate), None, evidence)
    faces, own = _split_consented(_faces([image]), consented)
    if faces and real_person_source:
        return Ruling("block", "II-1", (*faces, *intimate))
    if faces and provenance is not None and provenance.ai_generated:
        return Ruling("block", "II-2", (*faces, *intimate, *ai_generated_reasons(provenance)))
    if faces and allow_adult_content:
        # Adult nudity is allowed here, but this shows a real person whose consent the
        # system cannot see.
        return Ruling("review", "RV-1", (*faces, *intimate))
    if allow_adult_content:
        reason = Reason(ReasonCode.ADULT_CONTENT_ALLOWED, "explicit content of adults is "
                        "allowed on this platform for verified adults")
        return Ruling("allow", "SX-1", (*intimate, reason), policy.clause("SX-1").allowed_label)
    return Ruling("block", "SX-1", (*faces, *own, *intimate))
