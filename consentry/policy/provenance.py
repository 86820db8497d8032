"""Reasons that an image's provenance gives a ruling. Pure."""

from __future__ import annotations

from consentry.policy.reasons import Reason, ReasonCode
from consentry.signals.manifest import ManifestState
from consentry.signals.provenance import ProvenanceFindings


def ai_generated_reasons(provenance: ProvenanceFindings) -> tuple[Reason, ...]:
    """Why the image counts as AI-generated, with the evidence."""
    reasons: list[Reason] = []
    manifest = provenance.manifest
    if manifest.ai_generated:
        source = next(iter(manifest.source_types), "")
        reasons.append(Reason(
            ReasonCode.AI_GENERATED,
            f"its C2PA manifest, signed by {manifest.signer or 'a trusted signer'}, says "
            f"it was made by a generative model ({source.rsplit('/', 1)[-1]})",
            kind="c2pa", rule=source))
    mark = provenance.watermark
    if mark is not None and mark.detected:
        reasons.append(Reason(
            ReasonCode.AI_GENERATED,
            f"it carries this platform's generated-image watermark "
            f"({mark.score:.0%} of the mark read back)",
            kind="watermark", score=mark.score))
    return tuple(reasons)


def unverified_reasons(provenance: ProvenanceFindings | None) -> tuple[Reason, ...]:
    """A manifest that cannot be believed, reported as such (it clears nothing)."""
    if provenance is None:
        return ()
    manifest = provenance.manifest
    if manifest.state is ManifestState.INVALID:
        return (Reason(ReasonCode.PROVENANCE_UNVERIFIED,
                       "its C2PA manifest is broken or does not match the image "
                       "(tampered or forged); its claims were not believed",
                       kind="invalid", rule=",".join(manifest.failures) or None),)
    if manifest.state is ManifestState.UNTRUSTED:
        return (Reason(ReasonCode.PROVENANCE_UNVERIFIED,
                       f"its C2PA manifest is signed by {manifest.signer or 'an unknown signer'}"
                       ", which is not a trusted signer; its claims were not believed",
                       kind="untrusted"),)
    return ()
