"""The verdict: what every check returns (contract in DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from consentry.enforcement.standing import Standing


class PolicyCitation(BaseModel):
    model_config = ConfigDict(frozen=True)

    clause: str
    version: str
    title: str


class AccountState(BaseModel):
    """The account as it stands after this check."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: Literal["active", "suspended", "permanently_suspended"]
    active_strikes: int
    suspended_until: datetime | None = None
    suspension_clause: str | None = None

    @classmethod
    def of(cls, standing: Standing) -> AccountState:
        return cls(
            id=standing.account_id,
            status=standing.status.value,
            active_strikes=standing.active_strikes,
            suspended_until=standing.suspended_until,
            suspension_clause=standing.suspension_clause,
        )


class EnforcementOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    strike_weight: int = 0
    suspended_until: datetime | None = None
    permanent_suspension: bool = False
    pending_review: bool = False
    evidence_preserved: bool = False
    law_enforcement_report: bool = False


class Appeal(BaseModel):
    """How the user contests this decision: show them ``token`` (or ``url``); it proves
    their standing, no account with us needed. One appeal per decision, before ``until``;
    a person who did not make the decision looks at it."""

    model_config = ConfigDict(frozen=True)

    window_days: int
    until: datetime
    token: str | None = None
    url: str | None = None
    how: str = ("Appeal at the url (or POST /v1/appeals with the token) before the date "
                "given; a person reviews it.")


class ManifestClaims(BaseModel):
    """An image's C2PA manifest as read: whether it is believed, and what it claims."""

    state: Literal["absent", "valid", "untrusted", "invalid"]
    source_types: list[str] = []
    generator: str | None = None
    signer: str | None = None
    assertions: list[str] = []
    verdict: str | None = None
    policy_version: str | None = None
    failures: list[str] = []


class WatermarkReading(BaseModel):
    detected: bool
    score: float  # share of the 32 mark bits read back
    threshold: float


class Provenance(BaseModel):
    """What an upload carries about its origin (docs/provenance.md)."""

    manifest: ManifestClaims
    # null: not read, because it could not have changed the decision (docs/provenance.md)
    watermark: WatermarkReading | None
    ai_generated: bool


class Verdict(BaseModel):
    """One decision. ``reasons`` are machine-readable; ``explanation`` can be shown to the
    user; ``id`` identifies the recorded event."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["generation", "output", "upload"]
    decision: Literal["allow", "block", "review"]
    category: str
    policy: PolicyCitation
    reasons: list[dict[str, Any]]
    explanation: str
    automated: bool = True
    label: str | None = None
    account: AccountState | None = None
    enforcement: EnforcementOutcome = EnforcementOutcome()
    appeal: Appeal | None = None
    # The puid of the DSA statement of reasons for a restriction (GET /v1/statements/{puid}).
    statement_of_reasons: str | None = None
    created_at: datetime
    # Uploads: the C2PA manifest and watermark the image carries.
    provenance: Provenance | None = None
