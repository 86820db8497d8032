"""Hash banks of known abuse imagery."""

from consentry.banks.index import PDQIndex

__all__ = ["PDQIndex"]
