"""Sealed fields: the personal data ordinary tables must keep to do their work (the
address a notice went to and what it said, an appellant's contact, a refused prompt, a
thread's recent turns), kept so that the database alone reveals none of it.

A value is encrypted with AES-GCM under a key derived (HKDF-SHA256) from the vault's
key-encryption key and the column it belongs to, and stored as text:
``sealed:1:<key id>:<base64 nonce+ciphertext>``. The column is the associated data, so a
value copied into another column does not open there. Values are small and many, so
they share the column's key rather than each carrying a wrapped key of its own (the
vault's envelope is for evidence); ``consentry evidence rotate`` re-seals them under the
active key. Reads by people are audited where they happen (the console); reads by the
gate itself (a thread's earlier turns) are not, as nobody sees them.
"""

from __future__ import annotations

import base64
import binascii
import os
from enum import StrEnum
from functools import cache
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consentry.errors import ConfigurationError
from consentry.evidence.keys import Keyring

PREFIX: Final = "sealed:1:"
NONCE: Final = 12


class Column(StrEnum):
    """Every column that holds sealed values: what each value is bound to."""

    NOTICE_RECIPIENT = "notifications.recipient"
    NOTICE_BODY = "notifications.body"
    NOTICE_DETAIL = "notifications.detail"
    APPEAL_CONTACT = "appeals.contact"
    APPEAL_REASON = "appeals.reason"
    CHECK_PROMPT = "checks.prompt"
    TURN_PROMPT = "thread_turns.prompt"


def seals(column: Column, value: str | None) -> bool:
    """Whether a value of the column is sealed: a notice to an account is addressed to
    ``account:<id>``, the platform's own id, which stays readable to route it."""
    return bool(value) and not (column is Column.NOTICE_RECIPIENT
                                and str(value).startswith("account:"))


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def key_id_of(value: str) -> str | None:
    """The id of the key a sealed value is under (None for a plain value)."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX):].split(":", 1)[0]


def without_quotes(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict as stored: its reasons keep where they matched (offsets, language) but
    not the words they quote from the prompt, which may name a person. The prompt itself
    is sealed; the words are read back from it (``with_quotes``)."""
    reasons = [dict(r, span={k: v for k, v in r["span"].items() if k != "text"})
               if isinstance(r.get("span"), dict) and "text" in r["span"] else r
               for r in verdict.get("reasons", [])]
    return {**verdict, "reasons": reasons} if "reasons" in verdict else verdict


def with_quotes(verdict: dict[str, Any], prompt: str | None) -> dict[str, Any]:
    """A stored verdict with its quotes read back from the prompt it was given for."""
    if prompt is None:
        return verdict
    reasons = []
    for r in verdict.get("reasons", []):
        span = r.get("span")
        if isinstance(span, dict) and "text" not in span:
            start, end = span.get("start"), span.get("end")
            if isinstance(start, int) and isinstance(end, int):
                r = dict(r, span={**span, "text": prompt[start:end]})
        reasons.append(r)
    return {**verdict, "reasons": reasons} if "reasons" in verdict else verdict


@cache
def _derive(kek: bytes, column: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=f"consentry sealed field|{column}".encode()).derive(kek)
    return AESGCM(key)


class SealedFields:
    """Seals and opens the values of the columns in ``Column`` with the vault's keys."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def seal(self, value: str, column: Column) -> str:
        active = self.keyring.active
        nonce = os.urandom(NONCE)
        sealed = _derive(self.keyring.key(active), column.value).encrypt(
            nonce, value.encode(), column.value.encode())
        return f"{PREFIX}{active}:{base64.b64encode(nonce + sealed).decode()}"

    def seal_optional(self, value: str | None, column: Column) -> str | None:
        return None if value is None else self.seal(value, column)

    def open(self, value: str | None, column: Column) -> str | None:
        """The plain value. A value written before sealing (not ``sealed:``) is returned
        as it is; it is sealed by the one-off pass at start."""
        if value is None or not is_sealed(value):
            return value
        key_id, _, encoded = value[len(PREFIX):].partition(":")
        try:
            blob = base64.b64decode(encoded, validate=True)
            plain = _derive(self.keyring.key(key_id), column.value).decrypt(
                blob[:NONCE], blob[NONCE:], column.value.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise ConfigurationError(
                f"a sealed {column.value} value does not open with the key configured as "
                f"{key_id!r} (a wrong key, or a value moved from another column)") from None
        return plain.decode()

    def reseal(self, value: str, column: Column) -> str:
        """The value sealed under the active key (a plain value is sealed)."""
        return self.seal(self.open(value, column) or "", column)
