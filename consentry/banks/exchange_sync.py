"""Hash lists kept fresh on a schedule: the ``exchanges.sync`` job (docs/exchanges.md).

``CONSENTRY_EXCHANGE_SYNCS`` names the banks to keep in sync and the list each follows
(``stopncii=stopncii,csam-ncmec=ncmec``). Each round catches every bank up from its
stored checkpoint, as ``consentry bank import`` does by hand; a list that fails (its
service down, its credentials refused) is reported and retried next round, and never
stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from consentry.banks.exchanges import ExchangeError
from consentry.banks.exchanges.sources import ExchangeSync, exchange_from_env
from consentry.banks.registry import BankError, ExchangeImport, ImportCounts

_log = logging.getLogger(__name__)


@dataclass
class SyncRound:
    """What one round did: the counts per bank, and the banks whose sync failed."""

    counts: dict[str, ImportCounts] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # bank -> error kind

    @property
    def changed(self) -> int:
        return sum(c.added + c.restored + c.removed + c.merged for c in self.counts.values())


def sync_banks(importer: ExchangeImport, syncs: tuple[ExchangeSync, ...],
                   env: Mapping[str, str] | None = None) -> SyncRound:
    """Catch every configured bank up with its list. Batches applied before a failure
    are kept with their checkpoint, so the next round resumes after them."""
    done = SyncRound()
    for sync in syncs:
        counts = ImportCounts()
        try:
            exchange = exchange_from_env(sync.source, env)
            importer.run(sync.bank, exchange, actor=f"schedule:{sync.source.value}",
                         progress=counts.set_to)
        except ExchangeError as exc:
            done.failed[sync.bank] = exc.kind
            # An exchange's message never holds a credential (ExchangeError's contract).
            _log.warning("exchange sync of bank %s failed (%s): %s; %d batches kept",
                         sync.bank, exc.kind, exc, counts.batches)
        except BankError as exc:
            done.failed[sync.bank] = "bank"
            _log.warning("exchange sync of bank %s from %s failed: %s", sync.bank,
                         sync.source.value, exc)
        done.counts[sync.bank] = counts
    return done
