"""Hash-bank index entry point; the implementation lives in ``consentry.banks.pdq_index``."""

from consentry.banks.pdq_index import PDQIndex, from_hex

__all__ = ["PDQIndex", "from_hex"]
