"""The decision of a generation request from its inputs, without the store: the
lexicon analysis of the prompt, then the policy. Pure and deterministic, so that the
gate and the quality benchmark decide exactly alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consentry.policy import Policy, Ruling, evaluate
from consentry.signals.findings import ImageFindings, PromptFindings
from consentry.signals.prompt import analyse_prompt


@dataclass(frozen=True)
class Judgement:
    """A ruling with the findings it rests on."""

    ruling: Ruling
    prompt: PromptFindings


def judge_generation(
    prompt: str,
    images: Sequence[ImageFindings],
    policy: Policy,
    *,
    allow_adult_content: bool = False,
    findings: PromptFindings | None = None,
) -> Judgement:
    """Decide a generation request from its prompt and its images' findings."""
    found = analyse_prompt(prompt) if findings is None else findings
    ruling = evaluate(found, images, policy, allow_adult_content=allow_adult_content)
    return Judgement(ruling, found)
