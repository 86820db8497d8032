"""Reading an image's C2PA manifest into typed findings. Pure apart from the parse, which
services run only inside ``consentry.signals.sandbox`` workers (c2pa-rs parses the
untrusted container).

A manifest is only believed when c2pa-rs validates it *and* its signing certificate
chains to one of the configured trust anchors. Everything else is reported as what it
is -- ``untrusted`` (signature sound, signer unknown: anyone can make such a manifest)
or ``invalid`` (tampered pixels, a broken signature, a damaged manifest) -- and its
claims are shown but never acted on.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

SOURCE_TYPE_PREFIX: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA: Final = SOURCE_TYPE_PREFIX + "trainedAlgorithmicMedia"
# Source types that say a generative model made (part of) the image.
AI_SOURCE_TYPES: Final = frozenset({
    TRAINED_ALGORITHMIC_MEDIA,
    SOURCE_TYPE_PREFIX + "compositeWithTrainedAlgorithmicMedia",
    SOURCE_TYPE_PREFIX + "compositeSynthetic",
})
VERDICT_ASSERTION: Final = "org.consentry.verdict"
_MAX_LISTED: Final = 20  # claims kept per manifest: findings stay small and picklable


class ManifestState(StrEnum):
    ABSENT = "absent"  # no C2PA manifest in the file
    VALID = "valid"  # validated, and the signer chains to a trust anchor
    UNTRUSTED = "untrusted"  # validated, but signed by a certificate nobody vouches for
    INVALID = "invalid"  # tampered, wrongly signed or unreadable


@dataclass(frozen=True, slots=True)
class ManifestFindings:
    """What an image's active C2PA manifest claims, and whether it can be believed."""

    state: ManifestState
    source_types: tuple[str, ...] = ()  # digitalSourceType of its actions
    generator: str | None = None  # the software agent that made it, else the claim generator
    signer: str | None = None  # the signing certificate's common name (issuer)
    assertions: tuple[str, ...] = ()  # assertion labels
    verdict: str | None = None  # our verdict id, where Consentry signed it
    policy_version: str | None = None
    failures: tuple[str, ...] = ()  # c2pa validation failure codes

    @property
    def trusted(self) -> bool:
        return self.state is ManifestState.VALID

    @property
    def ai_generated(self) -> bool:
        """A trusted manifest says a generative model made the image."""
        return self.trusted and any(s in AI_SOURCE_TYPES for s in self.source_types)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for verdicts, reviewers and the CLI)."""
        return {"state": self.state.value, "source_types": list(self.source_types),
                "generator": self.generator, "signer": self.signer,
                "assertions": list(self.assertions), "verdict": self.verdict,
                "policy_version": self.policy_version, "failures": list(self.failures)}


def reader_settings(trust_anchors: str | None) -> dict[str, Any]:
    """c2pa-rs settings for reading: trust only ``trust_anchors`` (PEM), fetch nothing."""
    settings: dict[str, Any] = {"verify": {"verify_trust": True,
                                           "remote_manifest_fetch": False,
                                           "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    return settings


def read_manifest(data: bytes, trust_anchors: str | None) -> ManifestFindings:
    """The active manifest of image ``data``, validated against ``trust_anchors`` (PEM
    certificates; None: nothing is trusted, so a sound manifest is ``untrusted``)."""
    import c2pa

    try:
        context = c2pa.Context(c2pa.Settings.from_dict(reader_settings(trust_anchors)))
        with c2pa.Reader(None, io.BytesIO(data), None, context) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc):
            return ManifestFindings(ManifestState.ABSENT)
        # Damaged or hostile manifest data: reported, never believed.
        return ManifestFindings(ManifestState.INVALID,
                                failures=(f"manifest.unreadable: {str(exc)[:200]}",))
    return _findings(state, results, active)


def _findings(state: str | None, results: dict[str, Any],
              active: dict[str, Any]) -> ManifestFindings:
    failures = tuple(str(f.get("code")) for f in
                     (results.get("activeManifest") or {}).get("failure", []))[:_MAX_LISTED]
    if state == "Trusted" and not failures:
        verdict_state = ManifestState.VALID
    elif state in {"Trusted", "Valid"} and set(failures) <= {"signingCredential.untrusted"}:
        verdict_state = ManifestState.UNTRUSTED
    else:
        verdict_state = ManifestState.INVALID
    assertions = [a for a in active.get("assertions", []) if isinstance(a, dict)]
    source_types: list[str] = []
    agents: list[str] = []
    verdict = policy_version = None
    for assertion in assertions:
        label = str(assertion.get("label", ""))
        raw = assertion.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                if isinstance(action, dict):
                    if isinstance(action.get("digitalSourceType"), str):
                        source_types.append(action["digitalSourceType"])
                    agent = action.get("softwareAgent")
                    name = agent.get("name") if isinstance(agent, dict) else agent
                    if isinstance(name, str):
                        agents.append(name)
        elif label == VERDICT_ASSERTION:
            verdict = _text(data.get("verdict"))
            policy_version = _text(data.get("policy_version"))
    generators = [g.get("name") for g in active.get("claim_generator_info", [])
                  if isinstance(g, dict)]
    generator = next(iter(agents), None) or next((g for g in generators if g), None) \
        or _text(active.get("claim_generator"))
    signature = active.get("signature_info") or {}
    signer = _text(signature.get("common_name"))
    if signer and signature.get("issuer"):
        signer = f"{signer} ({signature['issuer']})"
    return ManifestFindings(
        verdict_state, tuple(dict.fromkeys(source_types))[:_MAX_LISTED], _text(generator),
        _text(signer), tuple(str(a.get("label")) for a in assertions)[:_MAX_LISTED],
        verdict, policy_version, failures)


def _text(value: Any, limit: int = 200) -> str | None:
    """A claim as display text: strings only, bounded (a manifest is attacker-written)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)[:limit]
    return "".join(ch for ch in text if ch.isprintable())[:limit] or None
