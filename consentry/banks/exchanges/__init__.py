"""Hash-list exchanges: import and keep in sync remote lists of known-abuse hashes.

Each exchange yields ``UpdateBatch``es; bank storage applies a batch and stores its
checkpoint in one transaction. See docs/exchanges.md for configuration and semantics.
"""

from consentry.banks.exchanges.base import (
    Exchange,
    ExchangeError,
    HashUpdate,
    HttpSettings,
    SkippedRecord,
    UpdateBatch,
    normalise_hash,
)
from consentry.banks.exchanges.hma_csv import HmaCsvExchange
from consentry.banks.exchanges.ncmec import NCMECExchange
from consentry.banks.exchanges.stopncii import StopNCIIExchange

__all__ = [
    "Exchange",
    "ExchangeError",
    "HashUpdate",
    "HmaCsvExchange",
    "HttpSettings",
    "NCMECExchange",
    "SkippedRecord",
    "StopNCIIExchange",
    "UpdateBatch",
    "normalise_hash",
]
