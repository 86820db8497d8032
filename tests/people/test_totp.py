"""TOTP: secrets sealed with a key derived from the service's key; codes one step either
side of now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from consentry.errors import ConfigurationError
from consentry.people import totp
from consentry.people.totp import SecretBox

NOW = datetime(2026, 11, 25, 9, 0, 10, tzinfo=UTC)


def test_a_sealed_secret_is_not_the_secret_and_opens_only_with_the_same_key():
    secret = totp.new_secret()
    sealed = SecretBox(lambda: b"k" * 48).seal(secret)
    assert secret not in sealed
    assert SecretBox(lambda: b"k" * 48).open(sealed) == secret
    with pytest.raises(ConfigurationError, match="consentry user totp"):
        SecretBox(lambda: b"other key " * 5).open(sealed)


def test_a_sealed_offer_expires():
    box = SecretBox(lambda: b"k" * 48)
    sealed = box.seal("1:SECRET")
    assert box.open(sealed, ttl_s=60) == "1:SECRET"
    with pytest.raises(ValueError):
        box.open("garbage", ttl_s=60)


def test_the_key_is_read_only_when_first_needed():
    loads = []
    box = SecretBox(lambda: loads.append(1) or b"k" * 48)
    assert loads == []
    box.seal("x")
    box.seal("y")
    assert loads == [1]


def test_a_code_is_accepted_one_step_either_side_of_now_and_no_further():
    secret = totp.new_secret()
    now_step = totp.step_of(NOW)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, NOW) == now_step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, NOW + timedelta(seconds=30 * offset))
        if code not in {totp.code_at(secret, NOW + timedelta(seconds=30 * o))
                        for o in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, NOW) is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_match_nothing(typed):
    assert totp.matching_step(totp.new_secret(), typed, NOW) is None


def test_spaces_in_a_code_are_ignored():
    secret = totp.new_secret()
    code = totp.code_at(secret, NOW)
    assert totp.matching_step(secret, f" {code[:3]} {code[3:]} ", NOW) == totp.step_of(NOW)


def test_the_provisioning_uri_is_what_authenticator_apps_take():
    secret = totp.new_secret()
    uri = urlsplit(totp.provisioning_uri(secret, "alice"))
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/Consentry:alice")
    query = parse_qs(uri.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Consentry"]
    assert len(secret) == 32  # 160 bits of base32
