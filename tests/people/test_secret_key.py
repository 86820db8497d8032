"""The service's secret key: set, or made once in the data directory with mode 0600."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.secret_key import KEY_FILE, derive_key, service_secret_key


def test_a_configured_key_is_used_and_no_file_is_made(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40)
    assert service_secret_key(settings) == b"s" * 40
    assert not (tmp_path / KEY_FILE).exists()


def test_a_configured_key_is_never_shown(tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="very-secret-value-" * 3)
    assert "very-secret-value" not in repr(settings)


def test_a_short_key_stops_the_start_without_echoing_it():
    with pytest.raises(ConfigurationError, match="at least 32 characters") as caught:
        Settings(secret_key="hunter2hunter2")
    assert "hunter2" not in str(caught.value)


def test_the_key_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONSENTRY_SECRET_KEY", "e" * 32)
    assert Settings.from_env().secret_key == "e" * 32


def test_without_one_a_key_is_made_once_private_and_kept(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = service_secret_key(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert service_secret_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary left


def test_processes_starting_together_agree_on_one_key(tmp_path):
    settings = Settings(data_dir=tmp_path)
    with ThreadPoolExecutor(16) as pool:
        keys = set(pool.map(lambda _: service_secret_key(settings), range(32)))
    assert len(keys) == 1


def test_a_key_file_others_can_read_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    service_secret_key(settings)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        service_secret_key(settings)


def test_keys_for_different_purposes_differ():
    assert derive_key(b"k" * 40, "a") != derive_key(b"k" * 40, "b")
    assert len(derive_key(b"k" * 40, "a")) == 32
