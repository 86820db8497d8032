"""Fixtures for the people layer: a directory and sessions over each database, with the
test clock, argon2 at a cost tests can afford (counted), and a fixed secret key."""

from __future__ import annotations

import pytest
from counting_passwords import SECRET_KEY, CountingPasswords

from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox


@pytest.fixture
def passwords() -> CountingPasswords:
    return CountingPasswords()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(lambda: SECRET_KEY)


@pytest.fixture
def directory(db, clock, passwords, box) -> Directory:
    return Directory(db, secrets=box, passwords=passwords, clock=clock)


@pytest.fixture
def sessions(db, clock) -> Sessions:
    return Sessions(db, clock=clock)
