"""Marking an allowed output: the platform's invisible watermark in its pixels, then a
C2PA manifest signed with the platform's key (docs/provenance.md).

The key and certificate chain come from configuration only (``CONSENTRY_PROVENANCE_KEY``,
``CONSENTRY_PROVENANCE_CERTS``); they are never logged or returned, and without them
marking is refused rather than signed with a made-up key.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

from consentry.config import Settings
from consentry.errors import ConfigurationError, Unavailable
from consentry.signals.manifest import TRAINED_ALGORITHMIC_MEDIA, VERDICT_ASSERTION
from consentry.signals.provenance import ProvenanceFindings
from consentry.signals.sandbox import Sandbox
from consentry.signals.watermark import detect_mark, embed_mark

_PEM_CERTIFICATE: Final = "-----BEGIN CERTIFICATE-----"
_JPEG_QUALITY: Final = 95


class ProvenanceNotConfigured(Unavailable):
    """No signing key or certificate chain is configured: nothing can be marked."""

    code = "provenance_not_configured"


@dataclass(frozen=True)
class SigningCredentials:
    """The platform's C2PA signing key and chain (leaf first), PEM."""

    key_pem: str = field(repr=False)
    chain_pem: str = field(repr=False)


@dataclass(frozen=True)
class MarkedImage:
    content: bytes
    media_type: str  # image/jpeg for a JPEG output, else image/png


def _pem(value: str, variable: str) -> str:
    """``value`` as PEM text: given inline, or read from the file it names."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    try:
        text = Path(value).read_text()
    except (OSError, ValueError):
        # Never echo the value: it may be a mistyped key.
        raise ConfigurationError(f"{variable} is neither PEM text nor a readable PEM file"
                                 ) from None
    if "-----BEGIN" not in text:
        raise ConfigurationError(f"{variable} names a file that holds no PEM data")
    return text


def signing_credentials(settings: Settings) -> SigningCredentials:
    """The configured credentials, or ``ProvenanceNotConfigured`` (503)."""
    if not settings.provenance_key or not settings.provenance_certs:
        raise ProvenanceNotConfigured(
            "provenance signing is not configured: set CONSENTRY_PROVENANCE_KEY and "
            "CONSENTRY_PROVENANCE_CERTS (PEM text or file paths) to mark outputs")
    return SigningCredentials(_pem(settings.provenance_key, "CONSENTRY_PROVENANCE_KEY"),
                              _pem(settings.provenance_certs, "CONSENTRY_PROVENANCE_CERTS"))


def trust_anchors(settings: Settings) -> str | None:
    """The certificates whose manifests are believed: as configured, else the root (last
    certificate) of the platform's own signing chain; None: none configured."""
    if settings.provenance_trust_anchors:
        return _pem(settings.provenance_trust_anchors, "CONSENTRY_PROVENANCE_TRUST_ANCHORS")
    if not settings.provenance_certs:
        return None
    chain = _pem(settings.provenance_certs, "CONSENTRY_PROVENANCE_CERTS")
    return _PEM_CERTIFICATE + chain.rsplit(_PEM_CERTIFICATE, 1)[-1]


def manifest_definition(*, generator: str, verdict_id: str, policy_version: str,
                        title: str) -> dict[str, Any]:
    """The manifest an output is signed with."""
    return {
        "claim_generator_info": [{"name": "Consentry"}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": generator}}]}},
            {"label": VERDICT_ASSERTION, "data": {"verdict": verdict_id,
                                                  "policy_version": policy_version,
                                                  "watermark": "invisible-watermark rivaGan"}},
        ],
    }


def mark_image(data: bytes, *, credentials: SigningCredentials, generator: str,
               verdict_id: str, policy_version: str) -> MarkedImage:
    """Watermark and sign image ``data``. The caller has checked that these bytes are an
    output the gate already decoded in its sandbox and allowed."""
    import c2pa

    with Image.open(io.BytesIO(data)) as opened:
        jpeg = opened.format == "JPEG"
        pixels = np.asarray(opened.convert("RGB"))
    marked = Image.fromarray(embed_mark(pixels))
    encoded = io.BytesIO()
    if jpeg:
        marked.save(encoded, "JPEG", quality=_JPEG_QUALITY)
    else:
        marked.save(encoded, "PNG")
    media_type = "image/jpeg" if jpeg else "image/png"
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem.encode(),
                               credentials.key_pem.encode(), None)  # no timestamp server
    signed = io.BytesIO()
    try:
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest_definition(
                generator=generator, verdict_id=verdict_id, policy_version=policy_version,
                title=f"{verdict_id}.{'jpg' if jpeg else 'png'}")) as builder:
            encoded.seek(0)
            builder.sign(signer, media_type, encoded, signed)
    except c2pa.C2paError as exc:
        # The message names what is wrong with the key or chain, never their contents.
        raise ConfigurationError(f"the provenance key or certificates were refused by the "
                                 f"C2PA signer ({type(exc).__name__})") from None
    return MarkedImage(signed.getvalue(), media_type)


def read_provenance(sandbox: Sandbox, data: bytes, anchors: str | None, *,
                    timeout_s: float | None = None) -> ProvenanceFindings:
    """What image ``data`` carries: its manifest (parsed in a sandbox worker) and the
    watermark (read from pixels the sandbox decoded)."""
    decoded, _, manifest = sandbox.decode_with_manifest(data, anchors, timeout_s=timeout_s)
    return ProvenanceFindings(manifest, detect_mark(np.asarray(decoded.analysis)))
