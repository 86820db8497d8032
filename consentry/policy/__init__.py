"""The policy (versioned YAML) and its evaluation: findings -> ruling."""

from consentry.policy.document import Clause, Policy, PolicyError, load_policy
from consentry.policy.evaluate import MinorEvidence, Ruling, evaluate
from consentry.policy.reasons import Reason, ReasonCode

__all__ = [
    "Clause",
    "MinorEvidence",
    "Policy",
    "PolicyError",
    "Reason",
    "ReasonCode",
    "Ruling",
    "evaluate",
    "load_policy",
]
