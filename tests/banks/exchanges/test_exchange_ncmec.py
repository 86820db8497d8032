"""NCMEC client against a loopback hash-sharing API speaking NCMEC's v2 XML."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from fake_ncmec import PASSWORD, USERNAME, FakeNCMEC

from consentry.banks.exchanges import ExchangeError, HttpSettings, NCMECExchange, UpdateBatch
from consentry.banks.exchanges.ncmec import ENVIRONMENTS

NOW = 1_700_100_000
T0 = 1_700_000_000


def pdq(n: int) -> str:
    return f"{n:064x}"


def md5(n: int) -> str:
    return f"{n:032x}"


def exchange(server: FakeNCMEC, http: HttpSettings, now: float = NOW, **kw) -> NCMECExchange:
    return NCMECExchange(
        USERNAME,
        PASSWORD,
        "Industry",
        base_url=server.base_url,
        http=http,
        clock=lambda: now,
        **kw,
    )


def ops(batches: list[UpdateBatch]) -> list[tuple[str, str, str, str]]:
    return [(u.op, u.external_id, u.signal, u.value) for b in batches for u in b.updates]


def utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(server: FakeNCMEC, count: int) -> None:
    for n in range(count):
        server.put(f"img{n}", T0 + n, fingerprints={"md5": md5(n), "pdq": pdq(n)})


def test_full_sync_follows_next_links_across_pages(ncmec_server, fast):
    ncmec_server.put("img1", T0, fingerprints={"md5": md5(1), "pdq": pdq(1), "sha1": "a" * 40})
    ncmec_server.put("img2", T0 + 1, fingerprints={"MD5": md5(2).upper()}, classification="B1")
    ncmec_server.put("vid1", T0 + 2, kind="video", fingerprints={"md5": md5(3)}, member=43)
    ncmec_server.put("img3", T0 + 3, fingerprints={"pdna": "x" * 100, "sha1": "b" * 40})
    ncmec_server.put("img4", T0 + 4, fingerprints={"pdq": pdq(4)})

    batches = list(exchange(ncmec_server, fast).fetch(None))

    assert len(batches) == 3  # page size 2, five entries
    assert [b.more for b in batches] == [True, True, False]
    assert ops(batches) == [
        ("add", "42-img1", "pdq", pdq(1)),
        ("add", "42-img1", "md5", md5(1)),
        ("add", "42-img2", "md5", md5(2)),
        ("add", "42-img4", "pdq", pdq(4)),
        ("add", "43-vid1", "md5", md5(3)),
    ]
    skipped = [s for b in batches for s in b.skipped]
    assert [(s.external_id, s.reason) for s in skipped] == [
        ("42-img3", "no PDQ or MD5 fingerprint")
    ]
    first = batches[0].updates[0]
    assert dict(first.metadata) == {
        "member_id": "42",
        "entry_type": "image",
        "environment": "Industry",
        "classification": "A1",
        "upvotes": "0",
        "downvotes": "0",
    }
    path, query, headers = ncmec_server.requests[0]
    assert path == "/hashsharing/v2/entries"
    assert query == {"from": utc(0), "to": utc(NOW - 5)}
    assert headers["authorization"].startswith("Basic ")
    # Later pages are fetched through the server's own next links.
    assert ncmec_server.requests[1][1]["start"] == "3"
    assert json.loads(batches[-1].checkpoint)["from"] == NOW - 5


def test_deletions_arrive_as_removes_in_a_later_sync(ncmec_server, fast):
    seed(ncmec_server, 3)
    first = list(exchange(ncmec_server, fast).fetch(None))
    assert len(ops(first)) == 6

    later = NOW + 3600
    ncmec_server.put("img1", NOW + 10, deleted=True)
    ncmec_server.put("vid9", NOW + 11, kind="video", fingerprints={"md5": md5(9)})
    ncmec_server.put("vid9", NOW + 12, kind="video", deleted=True)
    ncmec_server.put("img2", NOW + 13, fingerprints={"md5": md5(22)}, classification="A2")
    second = list(exchange(ncmec_server, fast, now=later).fetch(first[-1].checkpoint))

    assert ncmec_server.windows[-1] == (NOW - 5, later - 5)  # picks up where it stopped
    assert ops(second) == [
        # A tombstone names no fingerprints: remove whatever the entry held.
        ("remove", "42-img1", "pdq", ""),
        ("remove", "42-img1", "md5", ""),
        ("add", "42-img2", "md5", md5(22)),
        ("remove", "42-vid9", "md5", ""),
    ]
    assert second[0].updates[2].metadata["classification"] == "A2"


def test_deletion_in_a_later_page_of_the_same_sync(ncmec_server, fast):
    seed(ncmec_server, 4)
    ncmec_server.put("img9", T0 + 9, deleted=True)  # sorts last: third page

    batches = list(exchange(ncmec_server, fast).fetch(None))

    assert [len(b.updates) for b in batches] == [4, 4, 2]
    assert ops(batches)[-2:] == [
        ("remove", "42-img9", "pdq", ""),
        ("remove", "42-img9", "md5", ""),
    ]


def test_resume_mid_window_uses_the_cursor_without_gaps_or_repeats(ncmec_server, fast):
    seed(ncmec_server, 7)
    everything = ops(list(exchange(ncmec_server, fast).fetch(None)))

    it = exchange(ncmec_server, fast).fetch(None)
    stored = [next(it), next(it)]
    it.close()
    ncmec_server.requests.clear()
    resumed = list(exchange(ncmec_server, fast, now=NOW + 60).fetch(stored[-1].checkpoint))

    assert ops(stored) + ops(resumed) == everything
    assert len(everything) == 14
    assert ncmec_server.requests[0][1]["start"] == "5"  # continued the old cursor
    # Then a fresh window covering the minute that passed.
    assert ncmec_server.windows[-1] == (NOW - 5, NOW + 55)


def test_stale_cursor_replays_the_window(ncmec_server, fast):
    seed(ncmec_server, 5)
    it = exchange(ncmec_server, fast).fetch(None)
    stored = next(it)
    it.close()

    # 13 hours later the paging URL is too old to trust.
    resumed = list(exchange(ncmec_server, fast, now=NOW + 13 * 3600).fetch(stored.checkpoint))

    assert ncmec_server.windows[-1][0] == 0
    assert {u for _, _, _, u in ops([stored, *resumed])} == {
        h for n in range(5) for h in (pdq(n), md5(n))
    }


def test_cursor_refused_by_server_replays_the_window(ncmec_server, fast):
    seed(ncmec_server, 5)
    it = exchange(ncmec_server, fast).fetch(None)
    stored = next(it)
    it.close()
    ncmec_server.expired_cursors = True
    ncmec_server.page_size = 10  # the replay fits one page, so no cursor is needed

    resumed = list(exchange(ncmec_server, fast).fetch(stored.checkpoint))

    assert len(ops(resumed)) == 10
    assert resumed[-1].more is False


def test_large_windows_shrink_and_every_entry_arrives_once(ncmec_server, fast):
    for n in range(12):
        ncmec_server.put(f"img{n:02d}", T0 + n * 1000, fingerprints={"pdq": pdq(n)})

    batches = list(exchange(ncmec_server, fast, max_entries_per_window=3).fetch(None))

    values = [v for _, _, _, v in ops(batches)]
    assert sorted(values) == [pdq(n) for n in range(12)]
    assert len(values) == 12
    assert len(ncmec_server.windows) > 3  # it narrowed the range
    assert [b.more for b in batches][-1] is False
    assert all(b.more for b in batches[:-1])
    assert json.loads(batches[-1].checkpoint) == {
        "v": 1,
        "from": NOW - 5,
        "to": None,
        "next": None,
        "next_at": None,
    }


def test_time_range_is_sent_in_utc_whatever_the_local_zone(ncmec_server, fast, monkeypatch):
    # threatexchange's get_entries formats local time with a "Z"; we must not.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        list(
            exchange(ncmec_server, fast).fetch(
                json.dumps({"v": 1, "from": T0, "to": None, "next": None, "next_at": None})
            )
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    assert ncmec_server.requests[0][1] == {"from": utc(T0), "to": utc(NOW - 5)}


DOWNVOTES = (
    '<feedback lastUpdateTimestamp="2023-06-01T12:48:14Z">'
    '<negativeFeedback type="Pdq" lastUpdateTimestamp="2023-05-31T19:41:51Z"><reasons>'
    '<reason guid="g-1" name="Not CSAM" type="Pdq"/>'
    '<members timestamp="2023-06-01T12:48:14Z">'
    '<member id="7">Seven</member><member id="8">Eight</member></members>'
    "</reasons></negativeFeedback>"
    '<affirmativeFeedback type="Md5" lastUpdateTimestamp="2023-06-01T12:48:14Z">'
    '<members timestamp="2023-06-01T12:48:14Z"><member id="9">Nine</member></members>'
    "</affirmativeFeedback></feedback>"
)


@pytest.mark.parametrize(("threshold", "pdq_op"), [(None, "add"), (3, "add"), (2, "remove")])
def test_downvotes_remove_only_when_configured(ncmec_server, fast, threshold, pdq_op):
    ncmec_server.put("img1", T0, fingerprints={"pdq": pdq(1), "md5": md5(1)}, feedback=DOWNVOTES)

    batches = list(exchange(ncmec_server, fast, remove_after_downvotes=threshold).fetch(None))

    by_signal = {u.signal: u for b in batches for u in b.updates}
    assert by_signal["pdq"].op == pdq_op
    assert by_signal["pdq"].metadata["downvotes"] == "2"
    assert by_signal["md5"].op == "add"
    assert by_signal["md5"].metadata["upvotes"] == "1"


def test_odd_entries_are_skipped_and_reported(ncmec_server, fast):
    ncmec_server.put("img1", T0, fingerprints={"pdq": "zz" * 32, "md5": md5(1)})
    ncmec_server.put("aud1", T0 + 1, kind="audio", fingerprints={"md5": md5(2)})
    ncmec_server.page_size = 10
    # The fake renders only images and videos; slip the audio entry into <images>.
    original = ncmec_server.handle

    def handle(path, query, headers):
        status, ctype, body = original(path, query, headers)
        extra = b'<audio><member id="42">M</member><id>aud1</id></audio>'
        return status, ctype, body.replace(b"</images>", extra + b"</images>")

    ncmec_server.handle = handle
    batches = list(exchange(ncmec_server, fast).fetch(None))

    assert ops(batches) == [("add", "42-img1", "md5", md5(1))]
    reasons = {s.external_id: s.reason for b in batches for s in b.skipped}
    assert reasons["42-img1"] == "malformed pdq fingerprint"
    assert reasons["42-aud1"].startswith("unparsable <audio> entry (ValueError")


def test_wrong_password_is_an_auth_error_that_does_not_leak_it(ncmec_server, fast):
    client = NCMECExchange(
        USERNAME, "guessed-pw", "Industry", base_url=ncmec_server.base_url, http=fast
    )
    with pytest.raises(ExchangeError) as caught:
        list(client.fetch(None))
    assert caught.value.kind == "auth" and caught.value.status == 401
    assert "guessed-pw" not in str(caught.value) and "guessed-pw" not in repr(client)
    assert str(caught.value).startswith("ncmec: entries: credentials rejected (HTTP 401)")


def test_server_error(ncmec_server, fast):
    ncmec_server.fail = 500
    with pytest.raises(ExchangeError, match="HTTP 500") as caught:
        list(exchange(ncmec_server, fast).fetch(None))
    assert caught.value.kind == "http" and caught.value.transient


def test_server_error_on_a_later_page_keeps_earlier_batches_valid(ncmec_server, fast):
    seed(ncmec_server, 5)
    it = exchange(ncmec_server, fast).fetch(None)
    first = next(it)
    ncmec_server.fail = 503
    with pytest.raises(ExchangeError, match="HTTP 503"):
        next(it)
    ncmec_server.fail = None
    rest = list(exchange(ncmec_server, fast).fetch(first.checkpoint))
    assert len(ops([first, *rest])) == 10


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>oops</bo", "response is not XML"),
        (b"<status><member id='1'>x</member></status>", "expected a <queryResult> document"),
        (b"", "response is not XML"),
    ],
)
def test_garbage_body_is_a_protocol_error(ncmec_server, fast, body, message):
    ncmec_server.handle = lambda *_: (200, "application/xml", body)
    with pytest.raises(ExchangeError, match=message) as caught:
        list(exchange(ncmec_server, fast).fetch(None))
    assert caught.value.kind == "protocol"


def test_hanging_server_times_out_quickly(ncmec_server, fast):
    ncmec_server.fail = "hang"
    began = time.monotonic()
    with pytest.raises(ExchangeError, match="within 1 s") as caught:
        list(exchange(ncmec_server, fast).fetch(None))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - began < 3


def test_environments_include_the_generative_ai_ones():
    assert {"Industry", "NGO_Generative_AI", "NGO_Generative_AI_Exploitative"} <= set(ENVIRONMENTS)
    client = NCMECExchange("u", "p", "ngo_generative_ai")
    assert client.base_url == "https://hashsharing.ncmec.org/generative-ai-csam"
    with pytest.raises(ExchangeError, match="choose one of Industry, ") as caught:
        NCMECExchange("u", "p", "Production")
    assert caught.value.kind == "config"


def test_from_env(ncmec_server):
    seed(ncmec_server, 1)
    env = {
        "CONSENTRY_NCMEC_USERNAME": USERNAME,
        "CONSENTRY_NCMEC_PASSWORD": PASSWORD,
        "CONSENTRY_NCMEC_ENVIRONMENT": "test_Industry",
        "CONSENTRY_NCMEC_BASE_URL": ncmec_server.base_url,
        "CONSENTRY_NCMEC_TIMEOUT_S": "1",
        "CONSENTRY_NCMEC_REMOVE_AFTER_DOWNVOTES": "2",
    }
    client = NCMECExchange.from_env(env)
    updates = [u for b in client.fetch(None) for u in b.updates]
    assert {u.metadata["environment"] for u in updates} == {"test_Industry"}
    assert PASSWORD not in repr(client)
    with pytest.raises(ExchangeError, match=r"set CONSENTRY_NCMEC_PASSWORD$"):
        NCMECExchange.from_env({**env, "CONSENTRY_NCMEC_PASSWORD": ""})
