"""The gate's errors are the package's (``consentry.errors``); kept importable from here."""

from consentry.errors import Conflict, InvalidRequest

__all__ = ["Conflict", "InvalidRequest"]
