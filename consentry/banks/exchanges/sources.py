"""The exchanges by name, configured from the environment (docs/exchanges.md): what the
CLI's ``bank import --from NAME`` and the scheduled ``exchanges.sync`` job both build."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from consentry.banks.exchanges import hma_csv
from consentry.banks.exchanges.base import Exchange, ExchangeError
from consentry.banks.exchanges.hma_csv import HmaCsvExchange
from consentry.banks.exchanges.ncmec import NCMECExchange
from consentry.banks.exchanges.stopncii import StopNCIIExchange
from consentry.errors import ConfigurationError


class ExchangeName(StrEnum):
    STOPNCII = "stopncii"
    NCMEC = "ncmec"
    CSV = "csv"


def exchange_from_env(source: ExchangeName, env: Mapping[str, str] | None = None, *,
                      file: Path | None = None) -> Exchange:
    """The exchange ``source``, its credentials and addresses read from ``env`` (default:
    the process environment). ``file`` (csv only) overrides CONSENTRY_HMA_CSV_PATH."""
    env = dict(os.environ if env is None else env)
    if source is ExchangeName.CSV:
        if file is not None:
            env[hma_csv.ENV_PATH] = str(file)
        return HmaCsvExchange.from_env(env)
    if file is not None:
        raise ExchangeError("--file is only for --from csv", exchange=source.value,
                            kind="config")
    if source is ExchangeName.STOPNCII:
        return StopNCIIExchange.from_env(env)
    return NCMECExchange.from_env(env)


@dataclass(frozen=True)
class ExchangeSync:
    """One bank kept in sync with one hash list."""

    bank: str
    source: ExchangeName


def parse_exchange_syncs(text: str) -> tuple[ExchangeSync, ...]:
    """``bank=source`` pairs, comma-separated; a bank may follow one list only. Raises
    ``ConfigurationError`` naming the bad pair, so a typo stops the service at start."""
    syncs: list[ExchangeSync] = []
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        bank, sep, source = (part.strip() for part in pair.partition("="))
        if not sep or not bank or not source:
            raise ConfigurationError(f"CONSENTRY_EXCHANGE_SYNCS: {pair!r} is not BANK=SOURCE "
                                     "(for example stopncii=stopncii)")
        try:
            name = ExchangeName(source.lower())
        except ValueError:
            raise ConfigurationError(
                f"CONSENTRY_EXCHANGE_SYNCS: unknown hash list {source!r} for bank {bank!r}; "
                f"use one of {', '.join(n.value for n in ExchangeName)}") from None
        if any(s.bank == bank for s in syncs):
            raise ConfigurationError(f"CONSENTRY_EXCHANGE_SYNCS: bank {bank!r} is named twice")
        syncs.append(ExchangeSync(bank, name))
    return tuple(syncs)
