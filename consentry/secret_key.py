"""The service's secret key: the root that keys for stored secrets are derived from (the
console's TOTP secrets today).

Set ``CONSENTRY_SECRET_KEY`` wherever more than one process shares a database (a fleet of
replicas, a command line on another machine): each process must derive the same keys.
Unset, a key is made on first use and kept in ``$CONSENTRY_DATA_DIR/secret.key``
(mode 0600), which serves one machine's server and command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consentry.config import MIN_SECRET_KEY_CHARS, Settings
from consentry.errors import ConfigurationError

KEY_FILE = "secret.key"


def service_secret_key(settings: Settings) -> bytes:
    """The configured key, else the one in the data directory (made there if missing)."""
    if settings.secret_key is not None:
        return settings.secret_key.encode()
    return _key_file(settings.data_dir / KEY_FILE)


def derive_key(secret_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so a key for one use never serves another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"consentry:{purpose}".encode()).derive(secret_key)


def _key_file(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name and linked into place: a process that starts at
    # the same moment either finds no file or the finished one, never half a key, and
    # exactly one key wins.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"{path} can be read by other users (mode "
                                 f"{stat.S_IMODE(mode):o}); make it private: chmod 600 {path}")
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise ConfigurationError(f"{path} holds no usable key (fewer than "
                                 f"{MIN_SECRET_KEY_CHARS} characters); remove it to make a "
                                 "new one, or set CONSENTRY_SECRET_KEY")
    return key.encode()
