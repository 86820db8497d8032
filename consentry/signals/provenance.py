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
    watermark: WatermarkFinding

    @property
    def ai_generated(self) -> bool:
        """A trusted manifest says a generative model made it, or it carries our mark
        (which only this platform's generated outputs are given)."""
        return self.manifest.ai_generated or self.watermark.detected

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the verdict's ``provenance``, the CLI's output."""
        return {"manifest": self.manifest.to_dict(),
                "watermark": {"detected": self.watermark.detected,
                              "score": self.watermark.score,
                              "threshold": self.watermark.threshold},
                "ai_generated": self.ai_generated}
