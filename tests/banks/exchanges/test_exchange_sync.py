"""Hash lists kept fresh on a schedule: CONSENTRY_EXCHANGE_SYNCS names the banks, the
``exchanges.sync`` job catches each up from its checkpoint, a failing list never stops
the others, and a bad setting stops the service at start."""

from __future__ import annotations

import logging

import pytest
from fake_stopncii import FETCH_KEY, SUBSCRIPTION_KEY

from consentry.banks.exchange_sync import sync_banks
from consentry.banks.exchanges.sources import ExchangeName, ExchangeSync, parse_exchange_syncs
from consentry.banks.matcher import BankMatcher
from consentry.banks.pdq_index import from_hex
from consentry.banks.registry import BankRegistry, ExchangeImport
from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.jobs import SCHEDULE, worker_services
from consentry.store.models import MaintenanceRun

VICTIM = "f" * 16 + "0" * 16 + "a5" * 16
LATER = "0123456789abcdef" * 4


def stopncii_env(server) -> dict[str, str]:
    return {"CONSENTRY_STOPNCII_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
            "CONSENTRY_STOPNCII_FETCH_STATUS_KEY": FETCH_KEY,
            "CONSENTRY_STOPNCII_BASE_URL": server.base_url,
            "CONSENTRY_STOPNCII_TIMEOUT_S": "2"}


def test_the_setting_names_banks_and_the_lists_they_follow():
    assert parse_exchange_syncs(" stopncii=stopncii, csam-list = NCMEC ,") == (
        ExchangeSync("stopncii", ExchangeName.STOPNCII),
        ExchangeSync("csam-list", ExchangeName.NCMEC))
    assert parse_exchange_syncs("") == ()


@pytest.mark.parametrize(("value", "message"), [
    ("stopncii", "'stopncii' is not BANK=SOURCE"),
    ("stopncii=", "'stopncii=' is not BANK=SOURCE"),
    ("stopncii=stopnci", "unknown hash list 'stopnci' for bank 'stopncii'; use one of "
                         "stopncii, ncmec, csv"),
    ("a=stopncii,a=ncmec", "bank 'a' is named twice"),
])
def test_a_bad_setting_stops_the_service_at_start(monkeypatch, value, message):
    monkeypatch.setenv("CONSENTRY_EXCHANGE_SYNCS", value)
    with pytest.raises(ConfigurationError, match="CONSENTRY_EXCHANGE_SYNCS") as failure:
        Settings.from_env()
    assert message in str(failure.value)


def test_each_round_catches_up_and_a_failing_list_does_not_stop_the_others(
        db, stopncii_server, caplog):
    registry = BankRegistry(db)
    registry.create("csam-list", "block", "csam")
    registry.create("stopncii", "block", "ncii")
    importer = ExchangeImport(registry)
    # NCMEC's credentials are missing: that list fails, StopNCII's is still synced.
    syncs = parse_exchange_syncs("csam-list=ncmec,stopncii=stopncii")
    env = stopncii_env(stopncii_server)
    stopncii_server.put(VICTIM)

    with caplog.at_level(logging.WARNING, logger="consentry.banks.exchange_sync"):
        first = sync_banks(importer, syncs, env)
    assert first.failed == {"csam-list": "config"}
    assert first.counts["stopncii"].added == 1 and first.changed == 1
    assert "exchange sync of bank csam-list failed (config)" in caplog.text
    assert SUBSCRIPTION_KEY not in caplog.text and FETCH_KEY not in caplog.text
    matcher = BankMatcher(db)
    assert [m.bank for m in matcher.match(None, from_hex([VICTIM]))] == ["stopncii"]

    # The next round fetches only what changed since the stored checkpoint.
    stopncii_server.put(LATER)
    stopncii_server.put(VICTIM, status="Withdrawn")
    second = sync_banks(importer, syncs, env)
    assert (second.counts["stopncii"].added, second.counts["stopncii"].removed) == (1, 1)
    assert matcher.match(None, from_hex([VICTIM])) == []
    assert [m.bank for m in matcher.match(None, from_hex([LATER]))] == ["stopncii"]
    assert sync_banks(importer, syncs, env).changed == 0


def test_a_bank_that_does_not_exist_is_reported_and_skipped(db, stopncii_server):
    importer = ExchangeImport(BankRegistry(db))
    done = sync_banks(importer, parse_exchange_syncs("gone=stopncii"),
                      stopncii_env(stopncii_server))
    assert done.failed == {"gone": "bank"} and done.changed == 0


def test_the_job_engine_runs_the_sync_on_its_schedule(db, database_url, tmp_path, monkeypatch,
                                                      stopncii_server):
    assert any(s.name == "exchanges.sync" and s.cron == "*/15 * * * *" for s in SCHEDULE)
    for name, value in stopncii_env(stopncii_server).items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path, database_url=database_url, semantic_layer=False,
                        exchange_syncs=parse_exchange_syncs("stopncii=stopncii"))
    BankRegistry(db).create("stopncii", "block", "ncii")
    services = worker_services(settings)
    try:
        stopncii_server.put(VICTIM)
        assert services.jobs.run("exchanges.sync") == 1
        with db.transaction() as s:
            first = s.get(MaintenanceRun, "job:exchanges.sync")
            assert first is not None and first.count == 1  # when it last succeeded, for /metrics
        assert services.jobs.run("exchanges.sync") == 0  # caught up: nothing twice
        services.jobs.run("removals.dispatch")
        with db.transaction() as s:
            again = s.get(MaintenanceRun, "job:exchanges.sync")
            assert again is not None and again.count == 0 and again.done_at >= first.done_at
            assert s.get(MaintenanceRun, "job:removals.dispatch") is None  # every round: not
    finally:
        services.close()
