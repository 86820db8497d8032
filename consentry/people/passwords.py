"""Passwords: argon2id hashes (``argon2-cffi``) and the policy a new password must meet.

Only the hash is stored. A hash made with older parameters is replaced at the next
successful sign-in (``needs_rehash``), so raising the cost reaches every account.
"""

from __future__ import annotations

import threading
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from consentry.errors import InvalidRequest

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 256  # long enough for any passphrase; bounds the work per attempt

# The most common passwords of 12 characters or more in breach corpora (shorter ones are
# refused by length already); compared ignoring case.
COMMON_PASSWORDS: Final = frozenset({
    "123456789012", "1234567890123", "12345678901234", "123456789123", "111111111111",
    "000000000000", "123123123123", "123412341234", "1q2w3e4r5t6y", "1qaz2wsx3edc",
    "qwertyuiopas", "qwerty123456", "qwertyuiop12", "qwertyuiop123", "qwerty123456789",
    "asdfghjkl123", "zxcvbnm12345", "abcdefghijkl", "abc123456789", "abcd12345678",
    "password1234", "password12345", "password123!", "password1234!", "passwordpassword",
    "password123456", "p@ssw0rd1234", "iloveyou1234", "iloveyouiloveyou", "letmein12345",
    "welcome12345", "welcome123456", "changeme1234", "administrator", "administrator1",
    "trustno11234", "monkey123456", "dragon123456", "football1234", "baseball1234",
    "sunshine1234", "superman1234", "princess1234", "starwars1234", "whatever1234",
    "aaaaaaaaaaaa", "consentry123", "consentry1234", "moderator123", "moderator1234",
})


def password_problems(password: str, username: str) -> list[str]:
    """What is wrong with ``password`` as a new password for ``username``, in words a
    person can act on; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters (this has {len(password)}). "
                        "A few unrelated words make a long password that is easy to remember.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if username and password.strip().lower() == username.strip().lower():
        problems.append("Do not use your username as your password.")
    if password.lower() in COMMON_PASSWORDS:
        problems.append("This is one of the most common passwords, which are tried first; "
                        "choose another.")
    return problems


def check_password(password: str, username: str) -> None:
    """Raise ``InvalidRequest`` (field ``password``) naming every problem with it."""
    problems = password_problems(password, username)
    if problems:
        raise InvalidRequest("weak_password", " ".join(problems), field="password")


class Passwords:
    """Hashing and checking with one set of argon2id parameters (the library's defaults:
    RFC 9106's second recommendation, 64 MiB and 3 passes). Tests pass cheaper ones."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._decoy: str | None = None
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored``; False for a damaged hash too."""
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than these."""
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def verify_decoy(self, password: str) -> None:
        """Do the work of one verification against a hash nobody has, so an unknown
        username costs (and takes) what a known one does."""
        with self._lock:
            if self._decoy is None:
                self._decoy = self.hasher.hash("decoy: no account has this password")
            decoy = self._decoy
        self.verify(decoy, password)
