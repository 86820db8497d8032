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

from consentry.policy import Policy, Ruling, evaluate
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
) -> Judgement:
    """Decide a generation request from its prompt and its images' findings.
    ``semantic``: the semantic layer; None leaves it out (lexicons and policy only)."""
    found = analyse_prompt(prompt) if findings is None else findings
    ruling = evaluate(found, images, policy, allow_adult_content=allow_adult_content)
    if semantic is None or ruling.decision == "block" or not needs_meaning(found, images):
        return Judgement(ruling, found)
    meaning = semantic.match(meaning_text(prompt, found))
    if meaning:
        ruling = evaluate(found, images, policy, allow_adult_content=allow_adult_content,
                          semantic=meaning)
    return Judgement(ruling, found, meaning, semantic_ran=True)
