"""The gate's use of the likeness registry: every face the image analysis found is
compared with the registry, and the policy's likeness rules (``policy.likeness``) are
applied to the ruling. Repeated refusals against one protected person are counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from consentry.likeness.registry import LikenessMatch, LikenessRegistry
from consentry.policy import FaceRef, ReasonCode, Ruling
from consentry.policy.likeness import ProtectedFace, protect
from consentry.signals.findings import ImageFindings
from consentry.signals.image import DecodedImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LikenessFinding:
    """Enrolled faces found in a check's images, as the requesting account sees them."""

    matches: tuple[LikenessMatch, ...] = ()
    account: str | None = None

    def seen_by(self, account: str | None) -> LikenessFinding:
        return replace(self, account=account)

    def _own(self, m: LikenessMatch) -> bool:
        return self.account is not None and m.account == self.account

    @property
    def consented(self) -> frozenset[FaceRef]:
        """The requester's own enrolled faces: consent on record."""
        return frozenset((m.image, m.box) for m in self.matches if self._own(m))

    @property
    def protected(self) -> list[ProtectedFace]:
        """Faces of people enrolled under other accounts."""
        return [ProtectedFace(m.image, m.box, m.no_edits) for m in self.matches
                if not self._own(m)]

    def record_attempts(self, registry: LikenessRegistry | None, ruling: Ruling,
                        check_id: str, account: str | None) -> None:
        """Count a refusal that protected someone's likeness from sexualisation."""
        if registry is None or ruling.clause != "II-1" or not any(
                r.code is ReasonCode.PROTECTED_LIKENESS for r in ruling.reasons):
            return
        for enrolment in sorted({m.enrolment_id for m in self.matches if not self._own(m)}):
            try:
                registry.record_attempt(enrolment, check_id, account)
            except Exception as exc:  # noqa: BLE001 - the refusal stands; only the count failed
                log.warning("could not count a likeness attempt for check %s: %s", check_id,
                            type(exc).__name__)


def find_likeness(registry: LikenessRegistry, decoded: Sequence[DecodedImage],
                  found: Sequence[ImageFindings]) -> LikenessFinding:
    """Compare every face the analysis found with the registry."""
    return LikenessFinding(tuple(
        m for image, findings in zip(decoded, found, strict=True) if findings.faces
        for m in registry.match(image, findings.index, tuple(f.box for f in findings.faces))))


def protect_likeness(ruling: Ruling, likeness: LikenessFinding, *, edit: bool) -> Ruling:
    """The ruling with protected likenesses applied (``policy.likeness.protect``)."""
    return protect(ruling, likeness.protected, edit=edit)
