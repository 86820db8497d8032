"""Settings come from the environment once, and a mistake in them stops the start."""

from __future__ import annotations

import pytest

from consentry.config import Settings


def test_fetch_networks_and_deadline_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONSENTRY_HMA_FETCH_HOSTS", "CDN.example.com, img.example.org")
    monkeypatch.setenv("CONSENTRY_HMA_FETCH_NETWORKS", " 10.20.0.0/16 ,fd00::/8,")
    monkeypatch.setenv("CONSENTRY_HMA_FETCH_TIMEOUT_S", "2.5")
    settings = Settings.from_env()
    assert settings.hma_fetch_hosts == ("cdn.example.com", "img.example.org")
    assert settings.hma_fetch_networks == ("10.20.0.0/16", "fd00::/8")
    assert settings.hma_fetch_timeout_s == 2.5


def test_fetch_defaults_reach_nothing_internal_within_ten_seconds(monkeypatch):
    for name in ("HOSTS", "NETWORKS", "TIMEOUT_S"):
        monkeypatch.delenv(f"CONSENTRY_HMA_FETCH_{name}", raising=False)
    settings = Settings.from_env()
    assert (settings.hma_fetch_hosts, settings.hma_fetch_networks) == ((), ())
    assert settings.hma_fetch_timeout_s == 10.0


@pytest.mark.parametrize("network", ["10.0.0.0/33", "cdn.internal", "10.0.0.1/8", ""])
def test_a_network_that_is_not_a_cidr_stops_the_start(network):
    with pytest.raises(ValueError, match="CONSENTRY_HMA_FETCH_NETWORKS"):
        Settings(hma_fetch_networks=(network,))


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_a_fetch_deadline_must_be_a_positive_number_of_seconds(seconds):
    with pytest.raises(ValueError, match="CONSENTRY_HMA_FETCH_TIMEOUT_S"):
        Settings(hma_fetch_timeout_s=seconds)
