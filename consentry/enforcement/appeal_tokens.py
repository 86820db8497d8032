"""Appeal tokens: what proves a person may appeal a restriction without an account with
us. Each statement of reasons carries one; it names what it appeals (a refused check, or
a takedown removal and its strike) and is signed with the service key, so nothing needs
to be stored when it is issued and a retried request gets the same token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_PREFIX: Final = "ap_"
_SIG_BYTES: Final = 16  # 128 bits


class AppealSubject(StrEnum):
    CHECK = "check"  # a refused generation, upload or output (and its strike, suspension)
    TAKEDOWN = "takedown"  # an uploader's content removed by a takedown case


@dataclass(frozen=True)
class AppealRef:
    kind: AppealSubject
    subject: str  # check id, or "<case number>:<account>"


class AppealTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, ref: AppealRef) -> str:
        body = _b64(json.dumps([ref.kind.value, ref.subject], separators=(",", ":")).encode())
        return f"{_PREFIX}{body}.{self._sign(body)}"

    def verify(self, token: str) -> AppealRef | None:
        """What the token appeals, or None for anything not issued by this service."""
        # A link copied from the end of a sentence keeps its full stop; tokens never end
        # in punctuation.
        token = token.strip().rstrip(".,;:)>]'\"")
        if not token.startswith(_PREFIX) or token.count(".") != 1 or len(token) > 1000:
            return None
        body, signature = token[len(_PREFIX):].split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            kind, subject = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return AppealRef(AppealSubject(kind), str(subject))
        except (ValueError, TypeError):
            return None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:_SIG_BYTES])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def takedown_subject(case_number: str, account: str) -> str:
    return f"{case_number}:{account}"
