"""Machine-readable findings that a verdict carries, each with its evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from consentry.signals.findings import Span


class ReasonCode(StrEnum):
    SEXUALISING_REQUEST = "sexualising_request"
    MINOR_CUE = "minor_cue"
    FACE_UNDER_CHALLENGE_AGE = "face_under_challenge_age"
    REAL_PERSON_IN_PHOTO = "real_person_in_photo"
    REAL_PERSON_REFERENCE = "real_person_reference"
    INTIMATE_INPUT_IMAGE = "intimate_input_image"
    BENIGN_CONTEXT = "benign_context"
    ADULT_CONTENT_ALLOWED = "adult_content_allowed"
    ACCOUNT_SUSPENDED = "account_suspended"
    ANALYSIS_UNAVAILABLE = "analysis_unavailable"
    HASH_MATCH = "hash_match"
    # Conversation context (issue 10): earlier turns of the same thread.
    THREAD_PHOTO = "thread_photo"  # a reply judged against the photo earlier in the thread
    THREAD_CONTINUATION = "thread_continuation"  # "more", "again" after a refusal
    THREAD_ESCALATION = "thread_escalation"  # the chain as a whole crosses the line
    EVASION_RETRY = "evasion_retry"  # a near-identical retry of a refused request
    # Meaning (issue 10): the semantic layer and the prompt bank.
    SEMANTIC_MATCH = "semantic_match"
    PROMPT_BANK_MATCH = "prompt_bank_match"
    # Likeness registry (issue 14): never names who is enrolled.
    PROTECTED_LIKENESS = "protected_likeness"
    CONSENT_ON_RECORD = "consent_on_record"  # the requester's own enrolled face
    # Provenance (issue 14): C2PA manifests and the platform's watermark.
    AI_GENERATED = "ai_generated"  # a trusted manifest or our watermark says so
    PROVENANCE_UNVERIFIED = "provenance_unverified"  # a forged, broken or untrusted manifest


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding behind a verdict. Only the fields that apply are set."""

    code: ReasonCode
    detail: str
    kind: str | None = None  # concept or cue, e.g. "undress", "relation", "age"
    span: Span | None = None
    rule: str | None = None
    image: int | None = None  # index of the image in the request
    face_box: tuple[int, int, int, int] | None = None
    estimated_age: int | None = None
    stated_age: int | None = None
    score: float | None = None
    bank: str | None = None
    entry: int | None = None  # the bank entry matched
    distance: int | None = None
    checks: tuple[str, ...] | None = None  # earlier verdict ids this reason rests on
    exemplar: str | None = None  # the nearest exemplar or bank phrasing
    similarity: float | None = None  # its cosine similarity to the request, 0-1

    def to_dict(self) -> dict[str, Any]:
        """JSON form: fields that are not set are left out."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            if key in ("face_box", "checks"):
                value = list(value)
            out[key] = str(value) if key == "code" else value
        return out
