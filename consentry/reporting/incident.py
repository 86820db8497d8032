"""The incident pack: the answer to a regulator's deadline about one period (optionally
one clause or one surface). A zip holding a one-page summary, volumes per hour with a
chart, the measures and policy versions in force and when each changed, the takedown SLA
figures, redacted sample decisions with their reasons, the audit chain's verification
over the period with the signed checkpoints that cover it, and a manifest with the
SHA-256 of every file.

No content bytes and nothing about a person go into a pack: figures are counted by the
database, samples keep only the machine-readable parts of their reasons (never the
prompt, a matched span's text, an account or a contact), and the audit proof holds
checkpoints and hashes, not the links' bodies (a verdict's link names its account).
The zip is written under a temporary name and moved into place, so a pack that fails
half-way never replaces a good one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from consentry.audit.checkpoints import Signer, public_key_text
from consentry.audit.configuration import KIND as CONFIG_KIND
from consentry.audit.verify import verify
from consentry.errors import InvalidRequest
from consentry.reporting.charts import timeline_chart
from consentry.reporting.documents import inline_svg, render
from consentry.reporting.transparency import (
    SURFACES,
    Period,
    TakedownFigures,
    is_match,
    takedown_figures,
)
from consentry.store.dialect import hour_of
from consentry.store.models import (
    AuditCheckpoint,
    AuditRecord,
    CheckRecord,
    Suspension,
    TakedownCase,
)

FORMAT: Final = "consentry-incident-pack-v1"
SAMPLES: Final = 25
SERIES: Final = ("attempts", "refusals", "matches", "takedowns", "suspensions")
# Reason fields a sample keeps: what was found, never the words or the person.
_REASON_FIELDS: Final = ("code", "kind", "rule", "image", "estimated_age", "stated_age",
                         "score", "bank", "distance", "similarity")
# Settings that name people or places to reach them are left out of the measures.
_PRIVATE_SETTING: Final = re.compile(r"email|username|password|secret|key|url|contact|token",
                                     re.I)
_ZIP_TIME: Final = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class IncidentScope:
    """What a pack covers: a period, and optionally one clause and one surface (these
    narrow the decisions; takedowns are counted whatever they concern, suspensions by
    clause only)."""

    period: Period
    clause: str | None = None
    surface: str | None = None

    def __post_init__(self) -> None:
        if self.surface is not None and self.surface not in SURFACES:
            raise InvalidRequest("bad_surface", f"the surface is one of {', '.join(SURFACES)}",
                                 field="surface")
        if self.clause is not None and not re.fullmatch(r"[A-Z]{2}-\d{1,2}", self.clause):
            raise InvalidRequest("bad_clause", "a clause is written like II-1 or CS-1",
                                 field="clause")


class HourVolumes(BaseModel):
    hour: str  # YYYY-MM-DD HH:00, UTC
    attempts: int
    refusals: int
    matches: int
    takedowns: int
    suspensions: int


class ConfigurationChange(BaseModel):
    seq: int
    at: datetime
    policy_version: str | None
    sha256: str
    in_force_at_start: bool
    changed: list[str]  # settings that differ from the configuration before it
    settings: dict[str, Any]


class SampleDecision(BaseModel):
    id: str
    surface: str
    at: datetime
    decision: str
    clause: str
    category: str
    policy_version: str
    automated: bool
    explanation: str
    reasons: list[dict[str, Any]]


class AuditProof(BaseModel):
    links: int  # links recorded in the period
    first_seq: int | None
    last_seq: int | None
    verified_to: int | None  # the signed checkpoint the verification ran to
    verification: dict[str, Any]
    key_id: str
    public_key: str
    checkpoints: list[dict[str, Any]]


class Incident(BaseModel):
    """Everything a pack holds, before it is written."""

    period_start: datetime
    period_end: datetime
    clause: str | None
    surface: str | None
    generated_at: datetime
    totals: dict[str, int]
    timeline: list[HourVolumes]
    measures: list[ConfigurationChange]
    sla: list[TakedownFigures]
    samples: list[SampleDecision]
    audit: AuditProof


def build_incident(signer: Signer, scope: IncidentScope, *,
                   now: datetime | None = None) -> Incident:
    """Gather the pack's contents (aggregates, a few samples, the audit proof)."""
    db = signer.db
    with db.transaction() as s:
        timeline = _timeline(s, scope)
        measures = _measures(s, scope.period)
        sla = takedown_figures(s, scope.period)
        samples = _samples(s, scope)
    totals = {name: sum(getattr(h, name) for h in timeline) for name in SERIES}
    return Incident(period_start=scope.period.start, period_end=scope.period.end,
                    clause=scope.clause, surface=scope.surface,
                    generated_at=now or datetime.now(UTC), totals=totals, timeline=timeline,
                    measures=measures, sla=sla, samples=samples,
                    audit=_audit_proof(signer, scope.period))


def _check_filters(scope: IncidentScope) -> list[Any]:
    where = [CheckRecord.created_at >= scope.period.start,
             CheckRecord.created_at < scope.period.end]
    if scope.clause:
        where.append(CheckRecord.clause == scope.clause)
    if scope.surface:
        where.append(CheckRecord.kind == scope.surface)
    return where


def _timeline(s: Session, scope: IncidentScope) -> list[HourVolumes]:
    period = scope.period
    hour = hour_of(s, CheckRecord.created_at).label("hour")
    checks = {h: (int(n), int(b or 0), int(m or 0)) for h, n, b, m in s.execute(
        select(hour, func.count(), func.sum(case((CheckRecord.decision == "block", 1),
                                                 else_=0)),
               func.sum(case((is_match(), 1), else_=0)))
        .where(*_check_filters(scope)).group_by(hour)).all()}
    case_hour = hour_of(s, TakedownCase.received_at).label("hour")
    takedowns = {str(h): int(n) for h, n in s.execute(
        select(case_hour, func.count())
        .where(TakedownCase.received_at >= period.start, TakedownCase.received_at < period.end,
               TakedownCase.merged_into.is_(None)).group_by(case_hour)).all()}
    suspension_hour = hour_of(s, Suspension.starts_at).label("hour")
    suspended = select(suspension_hour, func.count()).where(
        Suspension.starts_at >= period.start, Suspension.starts_at < period.end)
    if scope.clause:
        suspended = suspended.where(Suspension.clause == scope.clause)
    suspensions = {str(h): int(n) for h, n in
                   s.execute(suspended.group_by(suspension_hour)).all()}
    return [HourVolumes(hour=h, attempts=checks.get(h, (0, 0, 0))[0],
                        refusals=checks.get(h, (0, 0, 0))[1],
                        matches=checks.get(h, (0, 0, 0))[2],
                        takedowns=int(takedowns.get(h, 0)),
                        suspensions=int(suspensions.get(h, 0)))
            for h in period.hours()]


def _measures(s: Session, period: Period) -> list[ConfigurationChange]:
    """The configuration in force when the period began and every change during it, from
    the ``config.changed`` links of the audit chain."""
    before = s.execute(select(AuditRecord.seq, AuditRecord.payload)
                       .where(AuditRecord.kind == CONFIG_KIND, AuditRecord.at < period.start)
                       .order_by(AuditRecord.seq.desc()).limit(1)).all()
    during = s.execute(select(AuditRecord.seq, AuditRecord.payload)
                       .where(AuditRecord.kind == CONFIG_KIND, AuditRecord.at >= period.start,
                              AuditRecord.at < period.end).order_by(AuditRecord.seq)).all()
    out: list[ConfigurationChange] = []
    previous: dict[str, Any] | None = None
    for seq, payload in [*before, *during]:
        link = json.loads(payload)
        settings = {k: v for k, v in link["body"].get("settings", {}).items()
                    if not _PRIVATE_SETTING.search(k)}
        changed = [] if previous is None else sorted(
            k for k in set(settings) | set(previous) if settings.get(k) != previous.get(k))
        out.append(ConfigurationChange(
            seq=seq, at=datetime.fromisoformat(link["at"]),
            policy_version=settings.get("policy_version"),
            sha256=link["body"].get("sha256", ""), in_force_at_start=seq in {b[0] for b in before},
            changed=changed, settings=settings))
        previous = settings
    return out


def _samples(s: Session, scope: IncidentScope) -> list[SampleDecision]:
    rows = s.execute(select(CheckRecord.id, CheckRecord.kind, CheckRecord.created_at,
                            CheckRecord.decision, CheckRecord.clause, CheckRecord.category,
                            CheckRecord.policy_version, CheckRecord.verdict)
                     .where(*_check_filters(scope), CheckRecord.decision != "allow")
                     .order_by(CheckRecord.created_at.desc()).limit(SAMPLES)).all()
    return [SampleDecision(id=r.id, surface=r.kind, at=r.created_at, decision=r.decision,
                           clause=r.clause, category=r.category,
                           policy_version=r.policy_version,
                           automated=bool(r.verdict.get("automated", True)),
                           explanation=f"Decided under clause {r.clause} ({r.category}).",
                           reasons=[redact_reason(x) for x in r.verdict.get("reasons", [])])
            for r in rows]


def redact_reason(reason: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable parts of a reason: its code, the rule, scores, ages, the bank
    and distance, and the language of a matched span, never the span's words, a prompt,
    an exemplar or free text."""
    kept = {k: reason[k] for k in _REASON_FIELDS if reason.get(k) is not None}
    span = reason.get("span")
    if isinstance(span, dict) and span.get("language"):
        kept["language"] = span["language"]
    return kept


def _audit_proof(signer: Signer, period: Period) -> AuditProof:
    """The chain verified from the period's first link to the signed checkpoint that
    covers its last (one is signed if none does yet), and those checkpoints."""
    db = signer.db
    with db.transaction() as s:
        first, last, count = s.execute(
            select(func.min(AuditRecord.seq), func.max(AuditRecord.seq), func.count())
            .where(AuditRecord.at >= period.start, AuditRecord.at < period.end)).one()
    base = {"key_id": signer.key_id, "public_key": public_key_text(signer.public)}
    if first is None:
        return AuditProof(links=0, first_seq=None, last_seq=None, verified_to=None,
                          verification={"ok": True, "checked": 0,
                                        "note": "no links were recorded in the period"},
                          checkpoints=[], **base)
    end = _covering_checkpoint(signer, int(last))
    report = verify(db, first=int(first), last=end, public=signer.public)
    with db.transaction() as s:
        checkpoints = [{"seq": c.seq, "at": c.at.isoformat(), "hash": c.hash,
                        "key_id": c.key_id, "signature": c.signature}
                       for c in s.scalars(select(AuditCheckpoint).where(
                           AuditCheckpoint.seq >= first, AuditCheckpoint.seq <= end)
                           .order_by(AuditCheckpoint.seq))]
    return AuditProof(links=int(count), first_seq=int(first), last_seq=int(last),
                      verified_to=end, verification=report.to_dict(),
                      checkpoints=checkpoints, **base)


def _covering_checkpoint(signer: Signer, last: int) -> int:
    for _ in range(2):
        with signer.db.transaction() as s:
            end = s.scalar(select(func.min(AuditCheckpoint.seq))
                           .where(AuditCheckpoint.seq >= last))
        if end is not None:
            return int(end)
        signer.checkpoint(force=True)
    raise RuntimeError("no checkpoint could be signed over the period")


# -- the pack ------------------------------------------------------------------------------


def incident_chart(incident: Incident) -> str:
    hours = [h.hour for h in incident.timeline]
    return timeline_chart("Volumes per hour", hours,
                          [(name, [getattr(h, name) for h in incident.timeline])
                           for name in SERIES])


def summary_html(incident: Incident, chart: Any) -> str:
    """The one-page summary; ``chart``: the timeline as markup (inline SVG or an img)."""
    return render("incident.html", incident=incident, chart=chart,
                  sla_all=_sla_all(incident))


def pack_files(incident: Incident) -> dict[str, bytes]:
    """Every file of the pack but the manifest, by name."""
    svg = incident_chart(incident)
    timeline = io.StringIO()
    timeline.write("hour," + ",".join(SERIES) + "\n")
    for h in incident.timeline:
        timeline.write(h.hour + "," + ",".join(str(getattr(h, n)) for n in SERIES) + "\n")

    def as_json(value: Any) -> bytes:
        return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()

    scope = {"period_start": incident.period_start, "period_end": incident.period_end,
             "clause": incident.clause, "surface": incident.surface,
             "generated_at": incident.generated_at, "totals": incident.totals}
    proof = incident.audit
    checkpoints = [json.dumps({"type": "key", "key_id": proof.key_id,
                               "public_key": proof.public_key})]
    checkpoints += [json.dumps({"type": "checkpoint", **c}) for c in proof.checkpoints]
    return {
        "summary.html": summary_html(incident, inline_svg(svg)).encode(),
        "summary.json": as_json(scope),
        "timeline.csv": timeline.getvalue().encode(),
        "timeline.svg": svg.encode(),
        "measures.json": as_json([m.model_dump(mode="json") for m in incident.measures]),
        "sla.json": as_json([t.model_dump(mode="json") for t in incident.sla]),
        "samples.json": as_json([x.model_dump(mode="json") for x in incident.samples]),
        "audit/verification.json": as_json(proof.model_dump(mode="json",
                                                            exclude={"checkpoints"})),
        "audit/checkpoints.jsonl": ("\n".join(checkpoints) + "\n").encode(),
    }


def manifest(files: dict[str, bytes]) -> bytes:
    entries = [{"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
               for name, data in sorted(files.items())]
    return (json.dumps({"format": FORMAT, "files": entries}, indent=2) + "\n").encode()


def write_pack(incident: Incident, out: Path) -> str:
    """Write the pack to ``out`` (through a temporary file moved into place); returns the
    zip's SHA-256."""
    files = pack_files(incident)
    files["manifest.json"] = manifest(files)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        with temporary.open("wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as pack:
                for name, data in files.items():
                    pack.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data,
                                  compress_type=zipfile.ZIP_DEFLATED)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def summary_body(incident: Incident, chart: Any) -> str:
    """The summary's sections, for a page with its own layout (the console)."""
    return render("_incident_body.html", incident=incident, chart=chart,
                  sla_all=_sla_all(incident))


def _sla_all(incident: Incident) -> TakedownFigures | None:
    return next((t for t in incident.sla if t.regime == "all"), None)
