"""StopNCII client against a loopback FetchHashes server speaking StopNCII's JSON."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fake_stopncii import FETCH_KEY, SUBSCRIPTION_KEY, FakeStopNCII

from consentry.banks.exchanges import ExchangeError, HttpSettings, StopNCIIExchange, UpdateBatch


def pdq(n: int) -> str:
    return f"{n:064x}"


def exchange(server: FakeStopNCII, http: HttpSettings, page_size: int = 2) -> StopNCIIExchange:
    return StopNCIIExchange(
        SUBSCRIPTION_KEY, FETCH_KEY, base_url=server.base_url, page_size=page_size, http=http
    )


def ops(batches: list[UpdateBatch]) -> list[tuple[str, str]]:
    return [(u.op, u.value) for b in batches for u in b.updates]


def test_full_sync_pages_through_every_record(stopncii_server, fast):
    for n in range(5):
        stopncii_server.put(pdq(n))

    batches = list(exchange(stopncii_server, fast).fetch(None))

    assert [len(b.updates) for b in batches] == [2, 2, 1]
    assert [b.more for b in batches] == [True, True, False]
    assert ops(batches) == [("add", pdq(n)) for n in range(5)]
    first = batches[0].updates[0]
    assert first.signal == "pdq"
    assert first.external_id == f"ImagePDQ:{pdq(0)}"
    assert first.metadata["status"] == "Active"
    assert first.metadata["case_numbers"] == f"case-{pdq(0)[:6]}"
    # threatexchange's client sends both keys as headers, never in the URL.
    path, query, headers = stopncii_server.requests[0]
    assert path == "/v1/FetchHashes"
    assert query == {"startTimestamp": "10", "pageSize": "2"}
    assert headers["ocp-apim-subscription-key"] == SUBSCRIPTION_KEY
    assert headers["x-functions-key"] == FETCH_KEY


def test_withdrawn_and_deleted_hashes_arrive_as_removes_in_a_later_sync(stopncii_server, fast):
    client = exchange(stopncii_server, fast)
    for n in range(3):
        stopncii_server.put(pdq(n), status="Received" if n == 2 else "Active")
    first_sync = list(client.fetch(None))
    assert ops(first_sync) == [("add", pdq(0)), ("add", pdq(1)), ("add", pdq(2))]

    stopncii_server.put(pdq(1), status="Withdrawn")
    stopncii_server.put(pdq(2), status="Deleted")
    stopncii_server.put(pdq(3))
    second_sync = list(client.fetch(first_sync[-1].checkpoint))

    # Only what changed since the first sync, withdrawals included.
    assert ops(second_sync) == [("remove", pdq(1)), ("remove", pdq(2)), ("add", pdq(3))]
    removed = second_sync[0].updates[0]
    assert removed.external_id == f"ImagePDQ:{pdq(1)}"
    assert removed.metadata["status"] == "Withdrawn"

    # Nothing changed: one empty page, checkpoint stays usable.
    third = list(client.fetch(second_sync[-1].checkpoint))
    assert ops(third) == []
    assert third[-1].more is False


def test_withdrawal_in_a_later_page_of_the_same_sync(stopncii_server, fast):
    stopncii_server.put(pdq(1))
    stopncii_server.put(pdq(2))
    stopncii_server.put(pdq(3))
    stopncii_server.put(pdq(1), status="Withdrawn")  # now the newest record

    batches = list(exchange(stopncii_server, fast).fetch(None))

    assert ops(batches) == [("add", pdq(2)), ("add", pdq(3)), ("remove", pdq(1))]


def test_resume_mid_sync_from_checkpoint_misses_nothing_and_repeats_nothing(stopncii_server, fast):
    for n in range(7):
        stopncii_server.put(pdq(n))
    client = exchange(stopncii_server, fast)
    everything = ops(list(client.fetch(None)))

    # Crash after storing the second batch; a new process resumes from its checkpoint.
    it = client.fetch(None)
    stored = [next(it), next(it)]
    it.close()
    # The page's nextSetTimestamp is past every record; resuming from it would skip 3.
    assert json.loads(stored[-1].checkpoint)["page_token"]
    resumed = list(exchange(stopncii_server, fast).fetch(stored[-1].checkpoint))

    assert ops(stored) + ops(resumed) == everything
    assert len(everything) == 7


def test_expired_page_token_replays_the_sync_instead_of_skipping(stopncii_server, fast, caplog):
    for n in range(5):
        stopncii_server.put(pdq(n))
    client = exchange(stopncii_server, fast)
    it = client.fetch(None)
    first = next(it)
    it.close()

    stopncii_server.token_generation += 1
    with caplog.at_level(logging.WARNING):
        resumed = list(client.fetch(first.checkpoint))

    assert ops(resumed)[-3:] == [("add", pdq(n)) for n in (2, 3, 4)]
    assert {v for _, v in ops([first, *resumed])} == {pdq(n) for n in range(5)}
    assert "page token refused" in caplog.text


def test_records_threatexchange_would_drop_or_we_cannot_use(stopncii_server, fast):
    # A withdrawal whose CSP feedback carries a value threatexchange's enum lacks: its
    # parser drops the whole record; we must still see the withdrawal.
    stopncii_server.put(
        pdq(1),
        status="Withdrawn",
        CSPFeedbacks=[{"source": "TikTok", "feedbackValue": "Undefined", "tags": ["x"]}],
    )
    stopncii_server.put(pdq(2).upper())  # upper-case hex is normalised, not rejected
    stopncii_server.put("abc123", signal_type="ImagePDQ")  # malformed hash
    stopncii_server.put("d" * 32, signal_type="VideoMD5")
    stopncii_server.put("not-a-tmk-hash", signal_type="VideoTMK")
    stopncii_server.put(pdq(4), status="Unknown")
    stopncii_server.put(pdq(5), status="Expired")  # a status this client does not know

    batches = list(exchange(stopncii_server, fast, page_size=50).fetch(None))

    updates = [u for b in batches for u in b.updates]
    assert [(u.signal, u.op, u.value) for u in updates] == [
        ("pdq", "remove", pdq(1)),
        ("pdq", "add", pdq(2)),
        ("md5", "add", "d" * 32),
    ]
    assert updates[0].metadata["csp_feedback"] == "TikTok=Undefined"
    reasons = sorted(s.reason for b in batches for s in b.skipped)
    assert reasons == [
        "hash status Unknown is neither live nor withdrawn",
        "malformed ImagePDQ hash",
        "unknown value: 'Expired' is not a valid StopNCIICaseStatus",
        "unsupported signal type VideoTMK",
    ]


def test_wrong_key_is_an_auth_error_that_does_not_leak_keys(stopncii_server, fast):
    client = StopNCIIExchange(
        "wrong-subscription-key", FETCH_KEY, base_url=stopncii_server.base_url, http=fast
    )
    with pytest.raises(ExchangeError) as caught:
        list(client.fetch(None))
    err = caught.value
    assert err.kind == "auth" and err.status == 401 and not err.transient
    assert str(err).startswith("stopncii: FetchHashes: credentials rejected (HTTP 401)")
    assert "wrong-subscription-key" not in str(err) and FETCH_KEY not in str(err)
    assert "wrong-subscription-key" not in repr(client)


def test_server_error_is_a_transient_http_error(stopncii_server, fast):
    stopncii_server.put(pdq(1))
    stopncii_server.fail = 500
    with pytest.raises(ExchangeError) as caught:
        list(exchange(stopncii_server, fast).fetch(None))
    assert caught.value.kind == "http" and caught.value.status == 500
    assert caught.value.transient
    assert "HTTP 500" in str(caught.value) and "upstream failure" in str(caught.value)


def test_one_503_is_retried(stopncii_server):
    stopncii_server.put(pdq(1))
    stopncii_server.fail, stopncii_server.fail_times = 503, 1
    http = HttpSettings(timeout_s=1.0, retries=1, backoff_s=0.0)
    assert ops(list(exchange(stopncii_server, http).fetch(None))) == [("add", pdq(1))]
    assert len(stopncii_server.requests) == 2


def test_garbage_body_is_a_protocol_error(stopncii_server, fast):
    stopncii_server.fail = "garbage"
    with pytest.raises(ExchangeError, match="response is not JSON") as caught:
        list(exchange(stopncii_server, fast).fetch(None))
    assert caught.value.kind == "protocol"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"count": 1}',
        b'{"count": 0, "nextSetTimestamp": 5, "hasMoreRecords": false, "hashRecords": "x"}',
    ],
)
def test_json_of_the_wrong_shape_is_a_protocol_error(stopncii_server, fast, body):
    stopncii_server.handle = lambda *_: (200, "application/json", body)
    with pytest.raises(ExchangeError, match="FetchHashes") as caught:
        list(exchange(stopncii_server, fast).fetch(None))
    assert caught.value.kind == "protocol"


def test_hanging_server_times_out_quickly(stopncii_server, fast):
    stopncii_server.fail = "hang"
    began = time.monotonic()
    with pytest.raises(ExchangeError, match=r"no answer from .* within 1 s") as caught:
        list(exchange(stopncii_server, fast).fetch(None))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - began < 3


def test_unreachable_server_is_unavailable(fast):
    client = StopNCIIExchange(
        SUBSCRIPTION_KEY, FETCH_KEY, base_url="http://127.0.0.1:9/v1", http=fast
    )
    with pytest.raises(ExchangeError, match=r"cannot connect to http://127.0.0.1:9") as caught:
        list(client.fetch(None))
    assert caught.value.kind == "unavailable" and caught.value.transient


def test_from_env(stopncii_server):
    env = {
        "CONSENTRY_STOPNCII_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
        "CONSENTRY_STOPNCII_FETCH_STATUS_KEY": FETCH_KEY,
        "CONSENTRY_STOPNCII_BASE_URL": stopncii_server.base_url + "/",
        "CONSENTRY_STOPNCII_TIMEOUT_S": "1",
    }
    stopncii_server.put(pdq(1))
    client = StopNCIIExchange.from_env(env)
    assert client.base_url == stopncii_server.base_url
    assert ops(list(client.fetch(None))) == [("add", pdq(1))]
    assert SUBSCRIPTION_KEY not in repr(client) and FETCH_KEY not in repr(client)


def test_from_env_names_missing_variables():
    with pytest.raises(ExchangeError) as caught:
        StopNCIIExchange.from_env({"CONSENTRY_STOPNCII_SUBSCRIPTION_KEY": "k"})
    assert caught.value.kind == "config"
    assert "CONSENTRY_STOPNCII_FETCH_STATUS_KEY" in str(caught.value)
    assert str(caught.value).count("CONSENTRY_") == 1


def test_foreign_checkpoint_is_rejected(stopncii_server, fast):
    with pytest.raises(ExchangeError) as caught:
        list(exchange(stopncii_server, fast).fetch('{"rows": 3}'))
    assert caught.value.kind == "checkpoint"
