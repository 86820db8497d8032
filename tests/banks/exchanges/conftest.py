"""Loopback fakes of the exchanges' services, and fast network settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_ncmec import FakeNCMEC
from fake_stopncii import FakeStopNCII

from consentry.banks.exchanges import HttpSettings


@pytest.fixture
def fast() -> HttpSettings:
    """~1 s timeouts, no retries: the failure tests must be quick and deterministic."""
    return HttpSettings(timeout_s=1.0, retries=0, backoff_s=0.0)


@pytest.fixture
def stopncii_server() -> Iterator[FakeStopNCII]:
    server = FakeStopNCII()
    yield server
    server.close()


@pytest.fixture
def ncmec_server() -> Iterator[FakeNCMEC]:
    server = FakeNCMEC()
    yield server
    server.close()
