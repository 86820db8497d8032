"""The optional second factor: time-based one-time codes (RFC 6238, ``pyotp``) from an
authenticator app, 6 digits every 30 seconds.

Each person's base32 secret is stored encrypted (Fernet, from ``cryptography``) with a
key derived from the service's secret key, so a copy of the database alone does not
yield anyone's codes. A code is accepted one step either side of now (clocks drift) and
only once (``Limits.first_use`` on its step, in ``directory.py``).
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
from collections.abc import Callable
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken

from consentry.errors import ConfigurationError
from consentry.secret_key import derive_key

ISSUER = "Consentry"
STEP_S = 30
WINDOW_STEPS = 1  # a code from the step before or after now is accepted too
_CODE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    """A fresh base32 secret (160 bits, RFC 4226's recommendation)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` address an authenticator app takes (typed or pasted; no QR)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator shows at ``at`` (for tests and for nothing else)."""
    return pyotp.TOTP(secret).generate_otp(step_of(at))


def step_of(at: datetime) -> int:
    return int(at.timestamp() // STEP_S)


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose code ``code`` is, within ``WINDOW_STEPS`` of ``at``; None when
    it is none of them. Spaces inside the code are ignored ("123 456")."""
    typed = code.replace(" ", "").strip()
    if not _CODE.match(typed):
        return None
    otp = pyotp.TOTP(secret)
    now = step_of(at)
    found = None
    for step in range(now - WINDOW_STEPS, now + WINDOW_STEPS + 1):
        # Every candidate is compared, in constant time, whichever matches.
        if hmac.compare_digest(otp.generate_otp(step), typed):
            found = step
    return found


class SecretBox:
    """Encrypts TOTP secrets for storage. The key is derived on first use from the
    service's secret key (``load_key``), so a command that never touches TOTP never
    needs it."""

    PURPOSE = "totp-secrets:v1"

    def __init__(self, load_key: Callable[[], bytes]) -> None:
        self._load_key = load_key
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _box(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                key = derive_key(self._load_key(), self.PURPOSE)
                self._fernet = Fernet(base64.urlsafe_b64encode(key))
            return self._fernet

    def load(self) -> None:
        """Derive the key now (a server does at start, so a bad key file stops it)."""
        self._box()

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode()

    def open(self, sealed: str, *, ttl_s: int | None = None) -> str:
        """The secret in ``sealed``. ``ConfigurationError`` when it was sealed with
        another key (CONSENTRY_SECRET_KEY changed); ``ValueError`` when ``ttl_s`` passed
        since it was sealed."""
        try:
            return self._box().decrypt(sealed.encode(), ttl=ttl_s).decode()
        except InvalidToken:
            if ttl_s is not None:
                raise ValueError("sealed too long ago, or not by this service") from None
            raise ConfigurationError(
                "a stored TOTP secret cannot be decrypted with this service's secret key "
                "(was CONSENTRY_SECRET_KEY or secret.key changed?); an administrator can "
                "give the person a new one with 'consentry user totp'") from None
