"""Key-encryption keys (KEKs) for the evidence vault, from configuration.

``CONSENTRY_EVIDENCE_KEYS`` lists ``id:base64`` pairs (32-byte keys), comma-separated,
the first being the key new items are wrapped with; the others only unwrap older items
until ``consentry evidence rotate`` has re-wrapped them. Unset, one key is derived from
the service's secret key (id ``derived-1``). Keys live in configuration, never in the
database beside the data, and are never logged.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Final

from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.secret_key import derive_key, service_secret_key

DERIVED_ID: Final = "derived-1"
_ID: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,15}$")


@dataclass(frozen=True)
class Keyring:
    """The KEKs by id; ``active`` wraps new data keys."""

    active: str
    keys: dict[str, bytes] = field(repr=False)

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise ConfigurationError(
                f"evidence is wrapped with key {key_id!r}, which CONSENTRY_EVIDENCE_KEYS "
                "does not hold: add it back (after the new one) until `consentry evidence "
                "rotate` has re-wrapped everything") from None

    def __repr__(self) -> str:  # ids only, never key bytes
        return f"Keyring(active={self.active!r}, ids={sorted(self.keys)!r})"


def parse_keys(text: str) -> Keyring:
    """``id:base64,id:base64``: the first is active."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not _ID.match(key_id):
            raise ConfigurationError("CONSENTRY_EVIDENCE_KEYS: write each key as id:base64 "
                                     "(an id of 1-16 of a-z 0-9 . _ -), comma-separated")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ConfigurationError(f"CONSENTRY_EVIDENCE_KEYS: key {key_id!r} is not 32 "
                                     "bytes of base64 (make one with: openssl rand -base64 "
                                     "32)")
        if key_id in keys:
            raise ConfigurationError(f"CONSENTRY_EVIDENCE_KEYS: key {key_id!r} is given twice")
        keys[key_id] = raw
        order.append(key_id)
    if not order:
        raise ConfigurationError("CONSENTRY_EVIDENCE_KEYS is set but holds no key")
    return Keyring(order[0], keys)


def keyring_for(settings: Settings) -> Keyring:
    if settings.evidence_keys:
        return parse_keys(settings.evidence_keys)
    derived = derive_key(service_secret_key(settings), "evidence-kek")
    return Keyring(DERIVED_ID, {DERIVED_ID: derived})
