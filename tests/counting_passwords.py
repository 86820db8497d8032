"""Argon2id at a cost tests can afford, counting every verification (decoys included):
the work a sign-in attempt costs. Shared by the people and console tests."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher

from consentry.people.passwords import Passwords

PASSWORD = "plum orchard lantern"
SECRET_KEY = b"test-secret-key-" * 4


class CountingPasswords(Passwords):
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        super().__init__(hasher or PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        self.verifications = 0
        self._count_lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._count_lock:
            self.verifications += 1
        return super().verify(stored, password)
