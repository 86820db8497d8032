"""Typed findings that detectors hand to the policy.

Detectors in ``signals/`` return these and nothing else; the policy evaluates them.
Every finding keeps the evidence (matched span, face box, score) so that a refusal
can always be explained.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Concept(StrEnum):
    """What a sexualising span asks for. Ordered roughly from mild to explicit."""

    SUGGESTIVE = "suggestive"  # "sexy", "hot", "seductive look"
    REVEALING = "revealing"  # bikini, lingerie, underwear, "shorter and sexier" dress
    SHEER = "sheer"  # transparent, see-through, wet clothing
    UNDRESS = "undress"  # removing or shrinking clothing
    NUDITY = "nudity"  # naked, nude, topless
    SEXUAL_POSE = "sexual_pose"  # provocative / seductive poses, "on the bed in ..."
    SEXUAL_ACT = "sexual_act"  # acts, fluids and their euphemisms ("glaze"), porn
    NSFW = "nsfw"  # "nsfw", "spicy", "uncensored", "explicit" versions


class PersonCue(StrEnum):
    """How a prompt points at a real person."""

    NAME = "name"  # "Natalie Portman", "Mrs Patel"
    HANDLE = "handle"  # "@jenny_runs_2020"
    RELATION = "relation"  # "my ex", "my coworker", "my neighbour", "his wife"
    PRONOUN = "pronoun"  # "her", "him", "them", "ella", "sie" -- real only with a photo
    DEICTIC = "deictic"  # "this girl", "the woman in this pic", "this lady"


class MinorCue(StrEnum):
    """Why a prompt may involve a minor."""

    WORD = "word"  # child, kid, teen, schoolgirl, loli, niño, ...
    AGE = "age"  # "12 year old", "16yo", "she's 11"
    SCHOOL = "school"  # "year 9", "7th grade", "middle school"
    YOUTHFUL = "youthful"  # "young-looking", "petite, childlike", "barely legal"


class BenignCue(StrEnum):
    """Context that makes clothing words harmless."""

    OBJECT_TARGET = "object_target"  # the garment is on a mannequin, hanger, cat, product
    NON_SEXUAL_CONTEXT = "non_sexual_context"  # art history, medical, catalogue, cartoon
    CLOTHED = "clothed"  # "fully clothed", "keep the shirt"
    IDIOM = "idiom"  # "the naked truth", "nude tone", "strip of film"


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the original prompt that a detector matched."""

    start: int  # offset in the original prompt (inclusive)
    end: int  # offset in the original prompt (exclusive)
    text: str  # the original text of the span, as the user typed it
    language: str  # ISO 639-1 code of the lexicon that matched ("en", "es", ...)


@dataclass(frozen=True, slots=True)
class SexualFinding:
    concept: Concept
    span: Span
    rule: str  # lexicon entry or composition rule that fired, e.g. "en:remove+inner_garment"


@dataclass(frozen=True, slots=True)
class PersonFinding:
    cue: PersonCue
    span: Span
    rule: str


@dataclass(frozen=True, slots=True)
class MinorFinding:
    cue: MinorCue
    span: Span
    rule: str
    age: int | None = None  # a stated age, when the prompt gives one


@dataclass(frozen=True, slots=True)
class BenignFinding:
    cue: BenignCue
    span: Span
    rule: str


@dataclass(frozen=True, slots=True)
class PromptFindings:
    """Everything prompt analysis found, with the spans that prove it."""

    prompt: str
    normalised: str
    sexual: tuple[SexualFinding, ...] = ()
    persons: tuple[PersonFinding, ...] = ()
    minors: tuple[MinorFinding, ...] = ()
    benign: tuple[BenignFinding, ...] = ()
    languages: tuple[str, ...] = ()  # lexicons that matched anything
    # A short request that only makes sense as "go on" ("more", "again", "the rest"):
    # judged with the thread it continues.
    continuation: bool = False
    # Most words belong to no lexicon and no English dictionary: a language the lexicons
    # do not cover, which the semantic layer reads instead.
    unknown_language: bool = False

    @property
    def concepts(self) -> frozenset[Concept]:
        return frozenset(f.concept for f in self.sexual)

    def person_cues(self) -> frozenset[PersonCue]:
        return frozenset(f.cue for f in self.persons)

    def benign_cues(self) -> frozenset[BenignCue]:
        return frozenset(f.cue for f in self.benign)


@dataclass(frozen=True, slots=True)
class FaceFinding:
    """A detected face: box in pixels (left, top, right, bottom) and apparent age."""

    box: tuple[int, int, int, int]
    age: int
    age_confidence: int  # 0-100, as the age model reports it
    gender: str


@dataclass(frozen=True, slots=True)
class ImageFindings:
    """What image analysis found in one input or output image."""

    index: int  # position of the image in the request
    width: int
    height: int
    faces: tuple[FaceFinding, ...] = ()
    nsfw: float = 0.0  # open_nsfw probability, 0-1
