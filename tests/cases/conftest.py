"""Takedown fixtures: the service over a real database, a loopback platform that the
removal callbacks reach, and a development outbox for notices."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from removal_platform import SECRET, RemovalPlatform

from consentry.banks.services import BankServices, entry_hashes
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.policy import load_policy
from consentry.signals.hashing import fingerprint


@pytest.fixture
def takedowns(db, clock, tmp_path: Path, platform: RemovalPlatform) -> Iterator[TakedownService]:
    banks = BankServices.open(db)
    callback = PlatformCallback(platform.url, SECRET)
    service = TakedownService(db, banks, load_policy(), sender=OutboxSender(tmp_path / "outbox"),
                              callback=callback, clock=clock)
    yield service
    callback.close()
    banks.close()


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
