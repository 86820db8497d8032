"""Guessing at the requester's status page, as a hostile client would: one client's
guesses never lock the rightful requester out, a lock says nothing about whether a case
exists, a merged duplicate never names the case it was merged into, and concurrent
guesses are counted atomically (on both databases)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from removal_platform import SECRET

from consentry.api.app import create_app
from consentry.banks.services import entry_hashes
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.signals.hashing import fingerprint

TIDA = {"regime": "take_it_down", "signature": "Sam Doe", "email": "sam@example.org",
        "statement": "shared without my consent", "declarations": ["not_consensual"]}
UNKNOWN = "TD-ABCDEFGHJK"


@pytest.fixture
def service(gate, tmp_path, platform):
    callback = PlatformCallback(platform.url, SECRET)
    svc = TakedownService(gate.db, gate.banks, gate.policy, callback=callback,
                          sender=OutboxSender(tmp_path / "outbox"))
    yield svc
    callback.close()


@pytest.fixture
def connect(gate, service):
    """Clients at different addresses, all talking to the same service and database."""
    opened = []

    def make(address: str) -> TestClient:
        client = TestClient(create_app(gate=gate, takedowns=service), client=(address, 4000))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def case(gate, photos, connect) -> tuple[str, str]:
    gate.banks.content.register("post-1", "upload", entry_hashes(fingerprint(photos["hopper"])),
                                account_id="uploader-1", url="https://social.example/p/1")
    body = connect("198.51.100.7").post(
        "/v1/takedowns", json={**TIDA, "content_ids": ["post-1"]}).json()
    return body["case"]["case"], body["pin"]


def _status(client: TestClient, number: str, pin: str):
    return client.get(f"/v1/takedowns/{number}", headers={"X-Case-PIN": pin})


def test_another_clients_guesses_never_lock_the_requester_out(case, connect):
    number, pin = case
    attacker = connect("203.0.113.66")
    codes = [_status(attacker, number, f"{i:08d}").status_code for i in range(7)]
    assert codes[:5] == [404] * 5 and set(codes[5:]) == {429}
    assert _status(connect("198.51.100.7"), number, pin).status_code == 200


def test_a_lock_reveals_nothing_about_whether_the_case_exists(case, connect):
    number, _ = case
    real = [_status(connect("203.0.113.1"), number, f"{i:08d}") for i in range(6)]
    unknown_client = connect("203.0.113.2")
    unknown = [_status(unknown_client, UNKNOWN, f"{i:08d}") for i in range(6)]
    assert [r.status_code for r in real] == [r.status_code for r in unknown]
    assert [r.json()["error"]["code"] for r in real] == \
        [r.json()["error"]["code"] for r in unknown]
    assert real[-1].status_code == 429


def test_a_merged_duplicate_never_names_the_case_it_joined(connect):
    # Not found yet, so the first case stays open and the second is merged into it.
    first = connect("198.51.100.7").post("/v1/takedowns", json={
        **TIDA, "content_ids": ["not-yet-indexed"]}).json()["case"]["case"]
    again = connect("192.0.2.10").post("/v1/takedowns", json={
        **TIDA, "email": "kim@example.org", "content_ids": ["not-yet-indexed"]})
    assert again.status_code == 201
    assert first not in again.text
    mine = _status(connect("192.0.2.10"), again.json()["case"]["case"], again.json()["pin"])
    assert mine.status_code == 200 and first not in mine.text


def test_concurrent_wrong_pins_check_at_most_five_then_lock(case, connect):
    number, pin = case
    attacker = connect("203.0.113.9")
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda i: _status(attacker, number, f"{i:08d}").status_code,
                              range(40)))
    assert codes.count(404) <= 5, codes
    assert codes.count(404) + codes.count(429) == 40
    assert _status(attacker, number, pin).status_code == 429  # the lock holds


def test_concurrent_lookups_from_one_client_are_throttled(connect):
    walker = connect("203.0.113.10")
    numbers = [f"TD-{i:010d}" for i in range(60)]
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda n: _status(walker, n, "12345678").status_code, numbers))
    assert codes.count(404) <= 20, codes
    assert codes.count(429) >= 40
