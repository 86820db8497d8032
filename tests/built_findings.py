"""Hand-built findings for the decision core's tests: what the lexicons and the image
models would have found, without running them."""

from __future__ import annotations

from consentry.signals.findings import (
    BenignFinding,
    FaceFinding,
    ImageFindings,
    MinorFinding,
    PersonFinding,
    PromptFindings,
    SexualFinding,
    Span,
)


def span(text: str = "x") -> Span:
    return Span(0, len(text), text, "en")


def findings(*, sexual=(), persons=(), minors=(), benign=()) -> PromptFindings:
    return PromptFindings(
        prompt="p", normalised="p",
        sexual=tuple(SexualFinding(c, span(c.value), "test") for c in sexual),
        persons=tuple(PersonFinding(c, span(c.value), "test") for c in persons),
        minors=tuple(MinorFinding(c, span(c.value), "test", age) for c, age in minors),
        benign=tuple(BenignFinding(c, span(c.value), "test") for c in benign),
    )


def photo(*ages: int, nsfw: float = 0.02) -> ImageFindings:
    faces = tuple(FaceFinding((10, 10, 50, 50), a, 50, "female") for a in ages)
    return ImageFindings(index=0, width=512, height=512, faces=faces, nsfw=nsfw)
