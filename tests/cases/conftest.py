"""Takedown fixtures: the service over a real database, a loopback platform that the
removal callbacks reach, and a development outbox for notices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_content import register, variants
from removal_platform import SECRET, RemovalPlatform

from consentry.banks.services import BankServices
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.policy import load_policy


@pytest.fixture
def takedowns(db, clock, tmp_path: Path, platform: RemovalPlatform) -> Iterator[TakedownService]:
    banks = BankServices.open(db)
    callback = PlatformCallback(platform.url, SECRET)
    service = TakedownService(db, banks, load_policy(), sender=OutboxSender(tmp_path / "outbox"),
                              callback=callback, clock=clock)
    yield service
    callback.close()
    banks.close()


@pytest.fixture
def posted(takedowns, photos):
    """Three copies of one intimate photo by three uploaders, among unrelated posts."""
    copies = variants(photos["astronaut"])
    for i, (name, data) in enumerate(copies.items()):
        register(takedowns, f"post-{name}", data, f"uploader-{i}",
                 url=f"https://social.example/p/{name}")
    for name in ("coffee", "china", "flower", "hopper"):
        register(takedowns, f"post-{name}", photos[name], "bystander",
                 url=f"https://social.example/p/{name}")
    return copies
