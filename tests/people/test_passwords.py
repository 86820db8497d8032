"""Passwords are kept only as argon2id hashes, and a new one must meet the policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from consentry.errors import InvalidRequest
from consentry.people.passwords import (
    MIN_LENGTH,
    Passwords,
    check_password,
    password_problems,
)

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_a_hash_is_argon2id_never_the_password_and_verifies_only_the_password():
    passwords = Passwords(CHEAP)
    stored = passwords.hash("plum orchard lantern")
    assert stored.startswith("$argon2id$")
    assert "plum orchard lantern" not in stored
    assert passwords.verify(stored, "plum orchard lantern")
    assert not passwords.verify(stored, "plum orchard lanterN")
    assert not passwords.verify(stored, "")
    # Salted: the same password never hashes alike twice.
    assert passwords.hash("plum orchard lantern") != stored


def test_a_damaged_hash_verifies_nothing_and_asks_for_a_rehash():
    passwords = Passwords(CHEAP)
    assert not passwords.verify("not a hash", "plum orchard lantern")
    assert passwords.needs_rehash("not a hash")


def test_a_hash_made_with_other_parameters_needs_rehashing():
    old = Passwords(CHEAP).hash("plum orchard lantern")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert stronger.verify(old, "plum orchard lantern")  # still signs in
    assert stronger.needs_rehash(old)
    assert not stronger.needs_rehash(stronger.hash("plum orchard lantern"))


def test_the_default_parameters_are_argon2id_with_at_least_64_mib():
    hasher = Passwords().hasher
    assert hasher.type.name == "ID" and hasher.memory_cost >= 65536 and hasher.time_cost >= 2


def test_the_decoy_does_one_verification_of_work():
    passwords = Passwords(CHEAP)
    passwords.verify_decoy("anything at all")  # no error, no account
    passwords.verify_decoy("anything at all")


@pytest.mark.parametrize(("password", "username", "words"), [
    ("short pass", "alice", f"at least {MIN_LENGTH} characters (this has 10)"),
    ("alice.moderator", "alice.moderator", "your username"),
    ("Alice.Moderator ", "alice.moderator", "your username"),
    ("Password1234", "alice", "most common passwords"),
    ("qwerty123456", "alice", "most common passwords"),
    ("x" * 300, "alice", "at most 256 characters"),
])
def test_the_policy_says_what_is_wrong(password, username, words):
    problems = password_problems(password, username)
    assert any(words in p for p in problems), problems
    with pytest.raises(InvalidRequest) as caught:
        check_password(password, username)
    assert caught.value.field == "password" and caught.value.code == "weak_password"
    assert words in str(caught.value)


def test_every_problem_is_named_at_once():
    problems = password_problems("alice", "alice")
    assert len(problems) == 2  # too short, and the username


@pytest.mark.parametrize("password", ["plum orchard lantern", "correct-horse-battery",
                                      "Zy8!kd0Pq2mW"])
def test_long_uncommon_passwords_pass(password):
    assert password_problems(password, "alice") == []
    check_password(password, "alice")
