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


@pytest.mark.parametrize(("public_url", "setting", "secure"), [
    (None, None, False),  # the default: plain http on loopback
    ("http://localhost:8000", None, False),
    ("http://[::1]:8000", None, False),
    ("https://console.example", None, True),
    ("http://console.internal", None, True),  # not loopback: browsers must use HTTPS
    ("http://127.0.0.1:8000", True, True),
    ("https://console.example", False, False),
])
def test_console_cookies_are_secure_unless_served_plainly_on_loopback(public_url, setting,
                                                                      secure):
    assert Settings(public_url=public_url, cookie_secure=setting).secure_cookies is secure


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False),
                                                 ("no", False), ("", None)])
def test_cookie_secure_is_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("CONSENTRY_COOKIE_SECURE", value)
    assert Settings.from_env().cookie_secure is expected


def test_a_cookie_setting_that_is_not_a_boolean_stops_the_start(monkeypatch):
    monkeypatch.setenv("CONSENTRY_COOKIE_SECURE", "maybe")
    with pytest.raises(ValueError, match="CONSENTRY_COOKIE_SECURE"):
        Settings.from_env()


def test_the_watermark_read_setting_is_read_and_a_typo_stops_the_start(monkeypatch):
    monkeypatch.delenv("CONSENTRY_READ_WATERMARK", raising=False)
    assert Settings.from_env().read_watermark == "decisive"
    monkeypatch.setenv("CONSENTRY_READ_WATERMARK", " Always ")
    assert Settings.from_env().read_watermark == "always"
    monkeypatch.setenv("CONSENTRY_READ_WATERMARK", "sometimes")
    with pytest.raises(ValueError, match="CONSENTRY_READ_WATERMARK must be one of"):
        Settings.from_env()


def test_the_database_pool_is_read_and_must_hold_a_connection(monkeypatch):
    monkeypatch.setenv("CONSENTRY_DATABASE_POOL", "24")
    assert Settings.from_env().database_pool == 24
    monkeypatch.setenv("CONSENTRY_DATABASE_POOL", "0")
    with pytest.raises(ValueError, match="CONSENTRY_DATABASE_POOL must be"):
        Settings.from_env()


def test_database_timeouts_are_read_and_checked(monkeypatch):
    defaults = Settings.from_env()
    assert (defaults.database_read_timeout_s, defaults.database_connect_timeout_s) == (2, 5)
    monkeypatch.setenv("CONSENTRY_DATABASE_READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("CONSENTRY_DATABASE_CONNECT_TIMEOUT_S", "10")
    settings = Settings.from_env()
    assert (settings.database_read_timeout_s, settings.database_connect_timeout_s) == (0.5, 10)
    monkeypatch.setenv("CONSENTRY_DATABASE_READ_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="CONSENTRY_DATABASE_READ_TIMEOUT_S must be a positive"):
        Settings.from_env()
    monkeypatch.setenv("CONSENTRY_DATABASE_READ_TIMEOUT_S", "2")
    monkeypatch.setenv("CONSENTRY_DATABASE_CONNECT_TIMEOUT_S", "1")  # libpq would make it 2
    with pytest.raises(ValueError, match="CONSENTRY_DATABASE_CONNECT_TIMEOUT_S must be from 2"):
        Settings.from_env()


def test_a_read_url_is_a_second_way_to_the_same_postgresql(monkeypatch):
    assert Settings.from_env().database_read_url is None
    monkeypatch.setenv("CONSENTRY_DATABASE_URL", "postgresql+psycopg://app:pw@db/consentry")
    monkeypatch.setenv("CONSENTRY_DATABASE_READ_URL",
                       "postgresql+psycopg://app:pw@pgbouncer:6432/consentry_reads")
    assert Settings.from_env().database_read_url.endswith("/consentry_reads")
    monkeypatch.setenv("CONSENTRY_DATABASE_URL", "sqlite:////tmp/c.db")
    with pytest.raises(ValueError, match="both must be postgresql") as refused:
        Settings.from_env()
    assert "pw" not in str(refused.value)  # a password is never echoed
