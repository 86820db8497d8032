"""Content as it turns up on a platform: copies of one photo, registered by uploaders.
Shared by the takedown tests."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from consentry.banks.services import entry_hashes
from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
)
from consentry.cases.takedowns import TakedownService
from consentry.signals.hashing import fingerprint


def variants(jpeg: bytes) -> dict[str, bytes]:
    """Three copies of one photo as they turn up on a platform."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")

    def enc(im: Image.Image, q: int = 85) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return buf.getvalue()

    return {
        "reencoded": enc(img, 60),
        "resized": enc(img.resize((img.width * 3 // 5, img.height * 3 // 5))),
        "mirrored": enc(ImageOps.mirror(img)),
    }


def register(service: TakedownService, content_id: str, image: bytes, account: str,
             url: str | None = None) -> None:
    service.banks.content.register(content_id, "upload", entry_hashes(fingerprint(image)),
                                   account_id=account, url=url)


def tida(locator: ContentLocator, email: str = "sam@example.org") -> TakedownSubmission:
    """A complete TAKE IT DOWN request for ``locator``."""
    return TakedownSubmission(
        regime=Regime.TAKE_IT_DOWN, locator=locator, requester_name="Sam Doe", email=email,
        signature="Sam Doe", relationship=Relationship.SELF,
        declarations=frozenset({Declaration.NOT_CONSENSUAL}),
        statement="This photo of me was shared without my consent.")
