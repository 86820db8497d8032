"""Errors a caller can fix: bad input. Each names the problem precisely."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The request cannot be checked as sent. Never a verdict, never an ``allow``.

    ``code`` is machine-readable; ``field`` names the offending input; ``too_large`` marks
    size problems (HTTP 413 rather than 422).
    """

    def __init__(self, code: str, message: str, *, field: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.too_large = too_large

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": str(self)}
