"""The decision of a generation request from its inputs, without the store: the
lexicon analysis of the prompt, the semantic layer where the cascade sends it, then the
policy. Pure and deterministic, so that the gate and the quality benchmark decide
exactly alike.

The cascade keeps the fast path fast: a request the lexicons already refused is decided;
the semantic layer (``consentry.signals.semantic``) reads only the rest of the requests
about a real person (a face in a photo, a name, a handle, a relation, a pronoun with a
photo) or a minor, and requests in a language no lexicon covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consentry.banks.prompt_bank import BankHit, PromptBankIndex
from consentry.policy import (
    FaceRef,
    MinorEvidence,
    Policy,
    Reason,
    ReasonCode,
    Ruling,
    evaluate,
)
from consentry.signals.findings import ImageFindings, PersonCue, PromptFindings
from consentry.signals.prompt import analyse_prompt
from consentry.signals.semantic import SemanticFinding, SemanticMatcher

_IDENTIFYING = frozenset({PersonCue.NAME, PersonCue.HANDLE, PersonCue.RELATION})


@dataclass(frozen=True)
class Judgement:
    """A ruling with the findings it rests on."""

    ruling: Ruling
    prompt: PromptFindings
    semantic: tuple[SemanticFinding, ...] = ()
    semantic_ran: bool = False


def needs_meaning(findings: PromptFindings, images: Sequence[ImageFindings]) -> bool:
    """Whether the cascade sends a request the lexicons did not refuse to the semantic
    layer: about a real person or a minor, or in a language no lexicon covers."""
    if findings.minors or findings.unknown_language:
        return True
    if any(img.faces for img in images):
        return True
    cues = findings.person_cues()
    return bool(cues & _IDENTIFYING) or (bool(images) and bool(cues))


def meaning_text(prompt: str, findings: PromptFindings) -> str:
    """The prompt as the encoder reads it: names and handles replaced by a pronoun (a
    name carries no intent, and sentence encoders weigh names heavily)."""
    spans = sorted((f.span for f in findings.persons
                    if f.cue in (PersonCue.NAME, PersonCue.HANDLE)),
                   key=lambda sp: sp.start, reverse=True)
    for sp in spans:
        prompt = prompt[: sp.start] + "she" + prompt[sp.end :]
    return prompt


def judge_generation(
    prompt: str,
    images: Sequence[ImageFindings],
    policy: Policy,
    *,
    allow_adult_content: bool = False,
    findings: PromptFindings | None = None,
    semantic: SemanticMatcher | None = None,
    prompt_bank: PromptBankIndex | None = None,
    consented: frozenset[FaceRef] = frozenset(),
) -> Judgement:
    """Decide a generation request from its prompt and its images' findings.
    ``semantic``: the semantic layer; None leaves it out (lexicons and policy only).
    ``prompt_bank``: confirmed phrasings, consulted with the same vector.
    ``consented``: the requester's own enrolled faces (``policy.evaluate``)."""
    found = analyse_prompt(prompt) if findings is None else findings
    ruling = evaluate(found, images, policy, allow_adult_content=allow_adult_content,
                      consented=consented)
    if semantic is None or ruling.decision == "block" or not needs_meaning(found, images):
        return Judgement(ruling, found)
    text = meaning_text(prompt, found)
    vector = semantic.vector(text)
    meaning = semantic.match(text, vector)
    if meaning:
        ruling = evaluate(found, images, policy, allow_adult_content=allow_adult_content,
                          semantic=meaning, consented=consented)
    hit = prompt_bank.nearest(vector) if prompt_bank is not None else None
    if hit is not None and ruling.decision != "block":
        ruling = _bank_ruling(hit, found, images, policy, ruling, allow_adult_content)
    return Judgement(ruling, found, meaning, semantic_ran=True)


def _bank_ruling(hit: BankHit, found: PromptFindings, images: Sequence[ImageFindings],
                 policy: Policy, ruling: Ruling, allow_adult_content: bool) -> Ruling:
    """A request that means nearly what a confirmed abusive phrasing means."""
    reason = Reason(
        ReasonCode.PROMPT_BANK_MATCH,
        f"the request means nearly the same as a phrasing reviewers confirmed as abuse "
        f"(prompt bank entry {hit.entry}: \u201c{hit.text}\u201d, {hit.similarity:.2f} "
        "similar)",
        kind=hit.clause, entry=hit.entry, exemplar=hit.text, similarity=hit.similarity,
        rule=f"prompt_bank:{hit.entry}")
    stated = [f for f in found.minors if f.age is None or f.age < 18]
    young = any(face.age < policy.challenge_age for img in images for face in img.faces)
    if stated or young:
        if hit.clause == "CS-1":
            evidence = MinorEvidence.STATED if stated else MinorEvidence.ESTIMATED
            return Ruling("block", "CS-1", (reason,), minor_evidence=evidence)
        return Ruling("review", "RV-1", (reason,))
    cues = found.person_cues()
    if images and (any(img.faces for img in images) or cues):
        return Ruling("block", "II-1", (reason,))
    if cues & _IDENTIFYING:
        return Ruling("block", "II-2", (reason,))
    if hit.clause == "SX-1":
        # Fictional adults: where the platform allows explicit content, so does the bank.
        return ruling if allow_adult_content else Ruling("block", "SX-1", (reason,))
    return Ruling("review", "RV-1", (reason,))
