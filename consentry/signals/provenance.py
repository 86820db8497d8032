"""What an image carries about where it came from: its C2PA manifest and the platform's
watermark, read together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consentry.signals.manifest import ManifestFindings
from consentry.signals.watermark import WatermarkFinding


@dataclass(frozen=True, slots=True)
class ProvenanceFindings:
    manifest: ManifestFindings
    # None: not read, because it could not have changed the decision
    # (``policy.provenance_can_decide``; ``CONSENTRY_READ_WATERMARK=always`` reads it).
    watermark: WatermarkFinding | None

    @property
    def ai_generated(self) -> bool:
        """A trusted manifest says a generative model made it, or it carries our mark
        (which only this platform's generated outputs are given)."""
        return self.manifest.ai_generated or (
            self.watermark is not None and self.watermark.detected)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the verdict's ``provenance``, the CLI's output."""
        mark = self.watermark
        return {"manifest": self.manifest.to_dict(),
                "watermark": None if mark is None else {
                    "detected": mark.detected, "score": mark.score,
                    "threshold": mark.threshold},
                "ai_generated": self.ai_generated}
