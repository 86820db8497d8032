"""The directory of people: creating and changing them, and signing in with the same
answer for every wrong attempt, limited per username and per client, counted atomically
(both databases)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from counting_passwords import PASSWORD, CountingPasswords
from sqlalchemy import select

from consentry.errors import Conflict, InvalidRequest, NotFound, TooManyAttempts, Unauthenticated
from consentry.people import totp
from consentry.people.directory import WRONG_CREDENTIALS, Directory
from consentry.people.roles import Role
from consentry.store.models import User

CLIENT = "198.51.100.7"


@pytest.fixture
def alice(directory):
    return directory.create("Alice", roles=["moderator", "lead"], password=PASSWORD,
                            display_name="  Alice   Moss ")


def _refusal(directory, username, password, client=CLIENT) -> tuple[type, str, str]:
    with pytest.raises((Unauthenticated, TooManyAttempts)) as caught:
        directory.authenticate(username, password, client=client)
    return type(caught.value), caught.value.code, str(caught.value)


# -- people ---------------------------------------------------------------------------------


def test_a_person_is_created_with_a_lower_case_username_and_a_hash(db, alice):
    assert alice.username == "alice" and alice.display_name == "Alice Moss"
    assert alice.roles == {Role.MODERATOR, Role.LEAD} and alice.enabled and not alice.has_totp
    with db.transaction() as s:
        stored = s.scalars(select(User)).one()
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert "password" not in alice.to_dict() and "hash" not in repr(alice)


@pytest.mark.parametrize(("username", "field"), [
    ("al", "username"), ("a" * 65, "username"), ("alice smith", "username"),
    ("alice@example", "username"), ("ålice", "username"), ("", "username")])
def test_a_bad_username_is_refused(directory, username, field):
    with pytest.raises(InvalidRequest, match="3 to 64 characters of a-z") as caught:
        directory.create(username, roles=["moderator"], password=PASSWORD)
    assert caught.value.field == field


def test_bad_roles_display_names_and_passwords_are_refused(directory):
    with pytest.raises(InvalidRequest, match="no role 'boss'"):
        directory.create("bob", roles=["boss"], password=PASSWORD)
    with pytest.raises(InvalidRequest, match="at least one role"):
        directory.create("bob", roles=[], password=PASSWORD)
    with pytest.raises(InvalidRequest, match="at most 200"):
        directory.create("bob", roles=["lead"], password=PASSWORD, display_name="b" * 201)
    with pytest.raises(InvalidRequest, match="your username"):
        directory.create("bob.lead.1234", roles=["lead"], password="Bob.Lead.1234")
    assert directory.people() == []


def test_a_username_is_taken_whatever_its_case(directory, alice):
    with pytest.raises(Conflict, match="taken"):
        directory.create("ALICE", roles=["moderator"], password=PASSWORD)


def test_roles_are_replaced_and_people_listed(directory, alice):
    directory.create("bob", roles=["compliance"], password=PASSWORD)
    directory.set_roles("alice", ["child_safety"])
    assert [(p.username, p.roles) for p in directory.people()] == [
        ("alice", {Role.CHILD_SAFETY}), ("bob", {Role.COMPLIANCE})]
    with pytest.raises(NotFound):
        directory.set_roles("carol", ["lead"])


# -- signing in -----------------------------------------------------------------------------


def test_the_right_password_signs_in_whatever_the_username_case(directory, alice):
    person = directory.authenticate(" ALICE ", PASSWORD, client=CLIENT)
    assert person.id == alice.id


def test_unknown_disabled_and_wrong_all_get_the_same_answer_after_the_same_work(
        directory, passwords, alice):
    directory.create("dana", roles=["moderator"], password=PASSWORD)
    directory.disable("dana")
    answers, work = [], []
    for username, password in (("nobody", PASSWORD), ("dana", PASSWORD),
                               ("alice", "wrong password here")):
        before = passwords.verifications
        answers.append(_refusal(directory, username, password))
        work.append(passwords.verifications - before)
    assert answers == [(Unauthenticated, "wrong_credentials", WRONG_CREDENTIALS)] * 3
    assert work == [1, 1, 1]


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(db, clock, box, alice):
    stronger = CountingPasswords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    upgraded = Directory(db, secrets=box, passwords=stronger, clock=clock)
    upgraded.authenticate("alice", PASSWORD, client=CLIENT)
    with db.transaction() as s:
        stored = s.scalars(select(User)).one().password_hash
    assert "t=2" in stored and not stronger.needs_rehash(stored)
    assert upgraded.authenticate("alice", PASSWORD, client=CLIENT).id == alice.id


def test_ten_failures_lock_the_username_for_every_client_before_any_password_work(
        directory, passwords, alice, clock):
    for i in range(10):
        assert _refusal(directory, "alice", "wrong password", client=f"203.0.113.{i}")[0] \
            is Unauthenticated
    before = passwords.verifications
    kind, code, _ = _refusal(directory, "alice", PASSWORD, client="192.0.2.1")
    assert (kind, code) == (TooManyAttempts, "too_many_sign_ins")
    assert passwords.verifications == before  # refused before argon2 ran
    # An unknown username is limited exactly alike (a lock says nothing about existence).
    for _ in range(10):
        _refusal(directory, "nobody", "wrong password", client="192.0.2.9")
    assert _refusal(directory, "nobody", PASSWORD, client="192.0.2.10")[0] is TooManyAttempts
    clock.advance(minutes=31)  # both windows have passed
    assert directory.authenticate("alice", PASSWORD, client="192.0.2.1").id == alice.id


def test_successes_do_not_count_towards_the_limit(directory, alice):
    for _ in range(15):
        directory.authenticate("alice", PASSWORD, client=CLIENT)
    for _ in range(9):
        _refusal(directory, "alice", "wrong password")
    assert directory.authenticate("alice", PASSWORD, client=CLIENT).id == alice.id


def test_twenty_failures_from_one_client_lock_it_for_every_username(directory, alice):
    for i in range(20):
        assert _refusal(directory, f"user{i}", "wrong password")[0] is Unauthenticated
    assert _refusal(directory, "alice", PASSWORD)[0] is TooManyAttempts
    assert directory.authenticate("alice", PASSWORD, client="192.0.2.50").id == alice.id


def test_twenty_concurrent_wrong_passwords_check_at_most_ten(directory, passwords, alice):
    before = passwords.verifications

    def attempt(i: int) -> type:
        return _refusal(directory, "alice", f"wrong password {i}", client=f"203.0.113.{i}")[0]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count(Unauthenticated) == 10 and outcomes.count(TooManyAttempts) == 10
    assert passwords.verifications - before == 10


def test_thirty_concurrent_guesses_from_one_client_check_at_most_twenty(directory, passwords):
    before = passwords.verifications
    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(lambda i: _refusal(directory, f"user{i}", "guess")[0],
                                 range(30)))
    assert outcomes.count(Unauthenticated) == 20 and outcomes.count(TooManyAttempts) == 10
    assert passwords.verifications - before == 20


def test_no_password_reaches_the_logs(directory, alice, caplog):
    caplog.set_level(logging.DEBUG)
    secret_words = ["plum orchard lantern", "hunter2 but longer", "correct horse again"]
    for password in secret_words:
        for username in ("alice", "nobody"):
            _refusal(directory, username, password + "!")
    directory.authenticate("alice", PASSWORD, client=CLIENT)
    directory.reset_password("alice", "hunter2 but longer")
    assert "sign-in refused" in caplog.text
    assert not any(word in caplog.text for word in secret_words)
    assert "nobody" not in caplog.text  # what was typed for an unknown user is not kept


# -- passwords ------------------------------------------------------------------------------


def test_a_reset_password_must_meet_the_policy_and_replaces_the_old(directory, alice):
    with pytest.raises(InvalidRequest, match="at least 12"):
        directory.reset_password("alice", "short")
    directory.reset_password("alice", "a brand new passphrase")
    assert _refusal(directory, "alice", PASSWORD)[0] is Unauthenticated
    assert directory.authenticate("alice", "a brand new passphrase", client=CLIENT)


def test_changing_ones_own_password_needs_the_current_one(directory, alice):
    with pytest.raises(InvalidRequest, match="current password is not right") as caught:
        directory.change_password(alice.id, "not it at all", "a brand new passphrase",
                                  client=CLIENT)
    assert caught.value.field == "current_password"
    with pytest.raises(InvalidRequest, match="most common"):
        directory.change_password(alice.id, PASSWORD, "password1234", client=CLIENT)
    directory.change_password(alice.id, PASSWORD, "a brand new passphrase", client=CLIENT)
    assert directory.authenticate("alice", "a brand new passphrase", client=CLIENT)


def test_guessing_the_current_password_is_limited_like_a_sign_in(directory, alice):
    for _ in range(10):
        with pytest.raises(InvalidRequest):
            directory.change_password(alice.id, "guess", "a brand new passphrase",
                                      client=CLIENT)
    with pytest.raises(TooManyAttempts):
        directory.change_password(alice.id, PASSWORD, "a brand new passphrase", client=CLIENT)


# -- the second factor ----------------------------------------------------------------------


def _secret_of(uri: str) -> str:
    return uri.split("secret=")[1].split("&")[0]


def test_a_code_is_needed_right_and_only_once(directory, alice, clock):
    secret = _secret_of(directory.turn_on_totp("alice"))
    assert directory.get("alice").has_totp
    wrong = f"{(int(totp.code_at(secret, clock.now)) + 1) % 1_000_000:06d}"
    with pytest.raises(Unauthenticated, match="not right"):
        directory.verify_code(alice.id, wrong, client=CLIENT)
    code = totp.code_at(secret, clock.now)
    assert directory.verify_code(alice.id, code, client=CLIENT).id == alice.id
    with pytest.raises(Unauthenticated, match="already used") as caught:
        directory.verify_code(alice.id, code, client=CLIENT)
    assert caught.value.code == "code_used"
    clock.advance(seconds=30)
    assert directory.verify_code(alice.id, totp.code_at(secret, clock.now), client=CLIENT)


def test_the_secret_is_stored_sealed(db, directory, alice):
    secret = _secret_of(directory.turn_on_totp("alice"))
    with db.transaction() as s:
        stored = s.scalars(select(User.totp_secret)).one()
    assert stored and secret not in stored


def test_codes_are_limited_like_passwords(directory, alice, clock):
    secret = _secret_of(directory.turn_on_totp("alice"))
    right = totp.code_at(secret, clock.now)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for _ in range(10):
        with pytest.raises(Unauthenticated):
            directory.verify_code(alice.id, wrong, client=CLIENT)
    with pytest.raises(TooManyAttempts):
        directory.verify_code(alice.id, right, client=CLIENT)


def test_a_disabled_person_gives_no_code(directory, alice, clock):
    secret = _secret_of(directory.turn_on_totp("alice"))
    directory.disable("alice")
    with pytest.raises(Unauthenticated) as caught:
        directory.verify_code(alice.id, totp.code_at(secret, clock.now), client=CLIENT)
    assert caught.value.code == "sign_in_required"


def test_an_offered_factor_is_turned_on_by_its_first_code(directory, alice, clock):
    offer = directory.offer_totp(alice.id)
    assert not directory.get("alice").has_totp  # nothing stored yet
    assert offer.secret not in offer.sealed and "Consentry:alice" in offer.uri
    with pytest.raises(InvalidRequest, match="not right"):
        directory.confirm_totp(alice.id, offer.sealed, "000000"
                               if totp.code_at(offer.secret, clock.now) != "000000"
                               else "111111", client=CLIENT)
    directory.confirm_totp(alice.id, offer.sealed, totp.code_at(offer.secret, clock.now),
                           client=CLIENT)
    assert directory.get("alice").has_totp
    clock.advance(seconds=30)
    assert directory.verify_code(alice.id, totp.code_at(offer.secret, clock.now),
                                 client=CLIENT)


def test_an_offer_serves_only_its_person_and_only_for_a_while(directory, alice, clock):
    bob = directory.create("bob", roles=["moderator"], password=PASSWORD)
    offer = directory.offer_totp(alice.id)
    with pytest.raises(InvalidRequest, match="expired"):
        directory.confirm_totp(bob.id, offer.sealed, totp.code_at(offer.secret, clock.now),
                               client=CLIENT)
    with pytest.raises(InvalidRequest, match="expired"):
        directory.offer_from(alice.id, "not an offer")


def test_turning_the_factor_off_ends_sessions(directory, sessions, alice):
    directory.turn_on_totp("alice")
    issued = sessions.start(alice.id, verified=True)
    assert not directory.turn_off_totp("alice").has_totp
    assert sessions.resolve(issued.token) is None
