"""Done-when: a StopNCII withdrawal in the local wire-format server removes the hash from
matching, through the real client, the bank import and the matcher."""

from __future__ import annotations

from fake_stopncii import FETCH_KEY, SUBSCRIPTION_KEY

from consentry.banks.exchanges import StopNCIIExchange
from consentry.banks.matcher import BankMatcher
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankRegistry, ExchangeImport

VICTIM = "f" * 16 + "0" * 16 + "a5" * 16
OTHER = "0123456789abcdef" * 4


def test_withdrawn_victim_hash_stops_matching(db, stopncii_server, fast):
    registry = BankRegistry(db)
    registry.create("stopncii", "block", "ncii")
    importer = ExchangeImport(registry)
    exchange = StopNCIIExchange(SUBSCRIPTION_KEY, FETCH_KEY, base_url=stopncii_server.base_url,
                                page_size=1, http=fast)
    matcher = BankMatcher(db)

    stopncii_server.put(VICTIM)
    stopncii_server.put(OTHER)
    counts = importer.run("stopncii", exchange)
    assert counts.added == 2
    [match] = matcher.match(None, from_hex([VICTIM]))
    assert (match.bank, match.clause, match.distance) == ("stopncii", "II-3", 0)

    stopncii_server.put(VICTIM, status="Withdrawn")  # the victim withdraws their case
    counts = importer.run("stopncii", exchange)
    assert counts.removed == 1
    assert matcher.match(None, from_hex([VICTIM])) == []
    assert len(matcher.match(None, from_hex([OTHER]))) == 1
