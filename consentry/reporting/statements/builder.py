"""One restriction in, one statement of reasons out, in the Transparency Database's
fields (``vocabulary``). Pure.

A statement carries no personal data (DSA Art. 24(5)): no account id, prompt text,
content id or link, address or name. Facts are told with the policy's fixed finding
codes, never with what the user wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consentry.reporting.statements import vocabulary as v

SURFACES = ("generation", "upload", "output", "takedown", "account")


@dataclass(frozen=True)
class Restriction:
    """What was restricted, on which ground, by whom and when."""

    puid: str
    surface: str  # generation | upload | output (a check) | takedown | account
    clause: str
    policy_version: str
    decided_at: datetime
    facts: str
    content_at: datetime | None = None  # when the content was made or posted
    automated: bool = True  # a person decided: False
    detected_automatically: bool = True
    source_type: str = v.SOURCE_VOLUNTARY
    with_images: bool = False  # a generation request that carried input photos
    account_decision: str | None = None  # ACCOUNT_SUSPENDED | ACCOUNT_TERMINATED
    account_until: datetime | None = None  # end of a temporary suspension


def build(r: Restriction, territorial_scope: Sequence[str] = v.EEA) -> dict[str, Any]:
    """The statement as the database's API takes it."""
    if r.surface not in SURFACES:
        raise ValueError(f"unknown surface {r.surface!r}")
    mapping = v.CLAUSES.get(r.clause)
    if mapping is None:
        raise ValueError(f"clause {r.clause!r} restricts nothing the database knows; "
                         "add it to vocabulary.CLAUSES")
    synthetic = r.surface in ("generation", "output")
    statement: dict[str, Any] = {
        "puid": r.puid,
        "decision_ground": mapping.ground,
        "category": mapping.category,
        "category_specification": list(mapping.synthetic if synthetic else mapping.keywords),
        "content_type": _content_type(r),
        "territorial_scope": sorted(territorial_scope),
        "content_date": (r.content_at or r.decided_at).date().isoformat(),
        "application_date": r.decided_at.date().isoformat(),
        "decision_facts": r.facts[:v.FACTS_MAX],
        "source_type": r.source_type,
        "automated_detection": v.YES if r.detected_automatically else v.NO,
        "automated_decision": v.FULLY_AUTOMATED if r.automated else v.NOT_AUTOMATED,
    }
    if r.account_decision is not None:
        statement["decision_account"] = r.account_decision
        if r.account_until is not None:
            statement["end_date_account_restriction"] = r.account_until.date().isoformat()
    else:
        statement["decision_visibility"] = [
            v.CONTENT_REMOVED if r.surface == "takedown" else v.CONTENT_DISABLED]
    terms = f"Content policy {r.policy_version}, clause {r.clause}"
    if mapping.ground == v.ILLEGAL:
        statement["illegal_content_legal_ground"] = mapping.basis[:v.LEGAL_GROUND_MAX]
        statement["illegal_content_explanation"] = (
            f"{mapping.explanation} ({terms})")[:v.EXPLANATION_MAX]
    else:
        statement["incompatible_content_ground"] = terms[:v.LEGAL_GROUND_MAX]
        statement["incompatible_content_explanation"] = mapping.explanation[:v.EXPLANATION_MAX]
    return statement


def _content_type(r: Restriction) -> list[str]:
    if r.surface == "generation":
        return [v.TEXT, v.IMAGE] if r.with_images else [v.TEXT]
    if r.surface == "output":
        return [v.IMAGE, v.SYNTHETIC_MEDIA]
    return [v.IMAGE]


def check_facts(surface: str, clause: str, finding_codes: Sequence[str], *,
                automated: bool, strike_weight: int = 0, images: int = 0) -> str:
    """The facts of a refused check, in words and finding codes only."""
    what = {"generation": "a request to generate or edit an image"
            + (f" (with {images} input image{'s' if images != 1 else ''})" if images else ""),
            "upload": "an image upload", "output": "a generated image before it was shown"
            }[surface]
    who = "An automated check" if automated else "A member of the safety team"
    parts = [f"{who} refused {what} under policy clause {clause}."]
    if finding_codes:
        parts.append("Findings: " + ", ".join(sorted(set(finding_codes))) + ".")
    if strike_weight:
        parts.append(f"A strike of weight {strike_weight} was recorded on the account.")
    return " ".join(parts)
