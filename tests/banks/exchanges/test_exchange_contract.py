"""The contract types every exchange hands to bank storage."""

from __future__ import annotations

import pytest

from consentry.banks.exchanges import (
    Exchange,
    ExchangeError,
    HashUpdate,
    HmaCsvExchange,
    NCMECExchange,
    StopNCIIExchange,
    normalise_hash,
)
from consentry.banks.exchanges.base import redact


def test_hash_update_accepts_canonical_hashes_only():
    HashUpdate("pdq", "ab" * 32, "x", "add", {"k": "v"})
    HashUpdate("md5", "0f" * 16, "x", "remove", {})
    HashUpdate("pdq", "", "x", "remove", {})  # remove by record: NCMEC tombstones
    for signal, value, op in [
        ("pdq", "AB" * 32, "add"),  # clients normalise; storage never sees upper case
        ("pdq", "ab" * 31, "add"),
        ("md5", "ab" * 32, "add"),
        ("md5", "zz" * 16, "add"),
        ("pdq", "", "add"),
        ("sha1", "ab" * 20, "add"),
        ("pdq", "ab" * 32, "delete"),
    ]:
        with pytest.raises(ValueError):
            HashUpdate(signal, value, "x", op, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="external_id"):
        HashUpdate("pdq", "ab" * 32, "", "add", {})


def test_hash_update_metadata_is_a_frozen_copy():
    tags = {"tags": "a"}
    update = HashUpdate("pdq", "ab" * 32, "x", "add", tags)
    tags["tags"] = "b"
    assert update.metadata["tags"] == "a"
    with pytest.raises(TypeError):
        update.metadata["tags"] = "c"  # type: ignore[index]


def test_normalise_hash():
    assert normalise_hash("pdq", " " + "AB" * 32 + "\n") == "ab" * 32
    assert normalise_hash("md5", "ab" * 16) == "ab" * 16
    assert normalise_hash("md5", None) is None
    assert normalise_hash("pdq", "ab" * 16) is None


def test_error_messages_redact_secrets_and_url_credentials():
    assert (
        redact("key=s3cret at https://u:pw@host/x", ["s3cret"]) == "key=*** at https://***@host/x"
    )
    err = ExchangeError("boom", exchange="ncmec", kind="timeout")
    assert str(err) == "ncmec: boom" and err.transient


def test_clients_satisfy_the_exchange_protocol(tmp_path):
    clients: list[Exchange] = [
        StopNCIIExchange("a", "b"),
        NCMECExchange("u", "p", "Industry"),
        HmaCsvExchange(tmp_path / "x.csv"),
    ]
    assert [c.name for c in clients] == ["stopncii", "ncmec", "hma_csv"]
