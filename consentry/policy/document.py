"""The policy document: the versioned YAML that the evaluator reads, as typed objects."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consentry.errors import ConfigurationError

Decision = Literal["allow", "block", "review"]

DEFAULT_POLICY = "default.yaml"
# Clauses the evaluator refers to by id; a policy file must define every one of them.
REQUIRED_CLAUSES = ("CS-1", "II-1", "II-2", "II-3", "KM-1", "SX-1", "OK-1", "EN-1", "FC-1", "RV-1")


class PolicyError(ConfigurationError):
    """The policy file is missing, malformed or incomplete."""


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    category: str
    decision: Decision
    explanation: str
    strike_weight: int = Field(ge=0)
    permanent_suspension: bool = False
    # Hours within which a human must confirm the permanent suspension; until then the
    # account is suspended pending review (CS-1). None: permanent at once (KM-1).
    confirm_within_hours: int | None = Field(default=None, ge=1)
    preserve_evidence: bool = False
    law_enforcement_report: bool = False
    configurable: bool = False
    allowed_label: str | None = None


class SuspensionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    active_strikes: int = Field(ge=1)
    days: int | None = Field(default=None, ge=1)
    permanent: bool = False

    @model_validator(mode="after")
    def _duration(self) -> SuspensionRule:
        if self.permanent == (self.days is not None):
            raise ValueError("a suspension rule needs exactly one of `days` or `permanent: true`")
        return self


class EnforcementRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strike_expiry_days: int = Field(ge=1)
    suspensions: tuple[SuspensionRule, ...]
    appeal_window_days: int = Field(ge=1)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intimate_image: float = Field(gt=0, le=1)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    name: str
    challenge_age: int = Field(ge=18, le=40)
    estimated_minor_age: int = Field(ge=1, le=18)
    thresholds: Thresholds
    clauses: dict[str, Clause]
    enforcement: EnforcementRules

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        missing = [c for c in REQUIRED_CLAUSES if c not in self.clauses]
        if missing:
            raise ValueError(f"policy lacks clauses: {', '.join(missing)}")
        return self

    def clause(self, clause_id: str) -> Clause:
        return self.clauses[clause_id]


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; the packaged default when ``path`` is None."""
    try:
        if path is None:
            text = resources.files("consentry.policy").joinpath(DEFAULT_POLICY).read_text("utf-8")
            origin = f"consentry/policy/{DEFAULT_POLICY}"
        else:
            text = Path(path).read_text("utf-8")
            origin = str(path)
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
        return Policy.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise PolicyError(f"invalid policy file {origin}: {exc}") from exc
