"""The errors a caller can act on, for the whole package.

Services raise these; each edge maps them once (the HTTP app's exception handlers, the
CLI's exit codes), so every endpoint answers the same way for the same problem. Each
carries a machine-readable ``code`` and a message that says how to fix the request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ConsentryError(Exception):
    """Base of the errors callers can act on. ``details`` adds machine-readable context
    to the answer (for example the entry that already holds a hash)."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), **self.details}


class InvalidRequest(ConsentryError, ValueError):
    """Bad input: the request cannot be handled as sent. Never a verdict, never an
    ``allow``. ``field`` names the offending input; ``too_large`` marks size problems
    (HTTP 413 rather than 422)."""

    def __init__(self, code: str, message: str, *, field: str, too_large: bool = False) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.too_large = too_large

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": str(self)}


class NotFound(ConsentryError, LookupError):
    """What the request names does not exist (or is not the caller's to see)."""

    code = "not_found"


class Conflict(ConsentryError):
    """The request clashes with what is already recorded: an idempotency key reused for a
    different request, an id already naming other content, an action the current state
    does not allow. Retrying the same request will not help."""

    code = "conflict"


class Unauthenticated(ConsentryError):
    """The caller is not signed in, or the credentials given do not sign anyone in. The
    message never says which part was wrong (unknown user, disabled, wrong password)."""

    code = "unauthenticated"


class Forbidden(ConsentryError):
    """The caller is known but may not do this: a role it lacks, or a form that did not
    carry its session's CSRF token."""

    code = "forbidden"


class TooManyAttempts(ConsentryError):
    """A limit on attempts was reached; ``retry_after`` says when to try again."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, code: str | None = None,
                 until: datetime | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message, code=code)
        self.until = until
        self.retry_after_s = retry_after_s


class Unavailable(ConsentryError):
    """The service is saturated or a dependency is down; retry after ``retry_after_s``.
    Never an ``allow``: a caller must treat it as "not checked"."""

    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None,
                 retry_after_s: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class ConfigurationError(ConsentryError, ValueError):
    """The service is configured in a way it cannot run with (a setting, the policy
    file); the message names the setting and what it must be."""

    code = "configuration_error"
