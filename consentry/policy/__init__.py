"""The policy (versioned YAML) and its evaluation: findings -> ruling."""

from consentry.policy.document import Clause, Policy, PolicyError, load_policy
from consentry.policy.evaluate import (
    FaceRef,
    KnownMatch,
    MinorEvidence,
    Ruling,
    evaluate,
    evaluate_media,
    provenance_can_decide,
)
from consentry.policy.reasons import Reason, ReasonCode

__all__ = [
    "Clause",
    "FaceRef",
    "KnownMatch",
    "MinorEvidence",
    "Policy",
    "PolicyError",
    "Reason",
    "ReasonCode",
    "Ruling",
    "evaluate",
    "evaluate_media",
    "load_policy",
    "provenance_can_decide",
]
