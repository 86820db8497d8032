"""The service's secret key, for what must be signed or encrypted: appeal tokens, TOTP
secrets. From CONSENTRY_SECRET_KEY; when unset, generated once and kept in the data dir
(mode 0600). A fleet must set it explicitly so that every replica signs alike."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from consentry.config import Settings
from consentry.errors import ConfigurationError

KEY_FILE = "secret.key"
_MIN_CHARS = 32


def service_key(settings: Settings, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose`` (derived, so that keys for different uses never
    coincide), from the configured secret or the one kept in the data dir."""
    secret = settings.secret_key or _stored_secret(settings.data_dir)
    if len(secret) < _MIN_CHARS:
        raise ConfigurationError(f"CONSENTRY_SECRET_KEY must be at least {_MIN_CHARS} "
                                 "characters (e.g. python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(48))')")
    return hashlib.sha256(f"consentry:{purpose}:{secret}".encode()).digest()


def _stored_secret(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:  # exclusive create: two processes starting together keep the first key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
