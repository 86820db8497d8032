"""Exact PDQ hash index: multi-index hashing with a delta segment and a change log."""

from consentry.banks.pdq_index.index import PDQIndex, from_hex

__all__ = ["PDQIndex", "from_hex"]
