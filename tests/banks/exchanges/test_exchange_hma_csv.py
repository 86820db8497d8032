"""HMA / ThreatExchange hash files: both layouts, batching, checkpoints, bad rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from consentry.banks.exchanges import ExchangeError, HmaCsvExchange, UpdateBatch


def pdq(n: int) -> str:
    return f"{n:064x}"


def md5(n: int) -> str:
    return f"{n:032x}"


def ops(batches: list[UpdateBatch]) -> list[tuple[str, str, str]]:
    return [(u.op, u.signal, u.value) for b in batches for u in b.updates]


def write(tmp_path: Path, text: str, name: str = "bank.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


DATASET_HEADER = "signal_type,signal_str,collab,category,tags\n"


def test_threatexchange_dataset_csv(tmp_path):
    path = write(
        tmp_path,
        DATASET_HEADER
        + f"pdq,{pdq(1)},NCII Collab,POSITIVE_CLASS,nude ncii\n"
        + f"video_md5,{md5(2).upper()},NCII Collab,INVESTIGATION_SEED,\n"
        + f"pdq,{pdq(3)},NCII Collab,NEGATIVE_CLASS,false_positive\n"
        + "url,https://example.org/x,NCII Collab,POSITIVE_CLASS,\n",
    )

    batches = list(HmaCsvExchange(path).fetch(None))

    assert ops(batches) == [
        ("add", "pdq", pdq(1)),
        ("add", "md5", md5(2)),
        ("remove", "pdq", pdq(3)),
    ]
    first = batches[0].updates[0]
    assert first.external_id == f"pdq:{pdq(1)}"
    assert dict(first.metadata) == {
        "collab": "NCII Collab",
        "category": "POSITIVE_CLASS",
        "tags": "nude ncii",
        "line": "2",
    }
    assert [(s.external_id, s.reason) for s in batches[0].skipped] == [
        ("url:https://example.org/x", "line 5: unsupported signal type url")
    ]
    assert batches[-1].more is False


def test_id_and_op_columns(tmp_path):
    path = write(
        tmp_path,
        "id,signal_type,signal_value,op\n"
        f"case-1,pdq,{pdq(1)},add\n"
        f"case-2,md5,{md5(2)},\n"
        f"case-1,pdq,{pdq(1)},REMOVE\n",
    )
    updates = [u for b in HmaCsvExchange(path).fetch(None) for u in b.updates]
    assert [(u.external_id, u.op) for u in updates] == [
        ("case-1", "add"),
        ("case-2", "add"),
        ("case-1", "remove"),
    ]


def test_threatexchange_signal_list_lines(tmp_path):
    path = write(
        tmp_path,
        f"# exported 2026-01-05\npdq {pdq(1)}\n\nvideo_md5 {md5(2)}\npdq,{pdq(3)}\n",
        name="signals.txt",
    )
    assert ops(list(HmaCsvExchange(path).fetch(None))) == [
        ("add", "pdq", pdq(1)),
        ("add", "md5", md5(2)),
        ("add", "pdq", pdq(3)),
    ]


def test_bare_hashes_need_a_default_signal(tmp_path):
    path = write(tmp_path, f"{pdq(1)}\n{pdq(2)}\n")
    assert len(ops(list(HmaCsvExchange(path, default_signal="pdq").fetch(None)))) == 2
    with pytest.raises(ExchangeError, match=r"line 1 .*no default signal type configured"):
        list(HmaCsvExchange(path).fetch(None))


def big_file(tmp_path: Path, rows: int) -> Path:
    return write(tmp_path, DATASET_HEADER + "".join(f"pdq,{pdq(n)},c,,\n" for n in range(rows)))


def test_streams_in_batches_and_resumes_from_the_row_offset(tmp_path):
    path = big_file(tmp_path, 10)
    exchange = HmaCsvExchange(path, batch_size=4)
    everything = list(exchange.fetch(None))
    assert [len(b.updates) for b in everything] == [4, 4, 2]
    assert [b.more for b in everything] == [True, True, False]
    assert [json.loads(b.checkpoint)["rows"] for b in everything] == [4, 8, 10]

    # Crash after the first batch was stored; a new process resumes after row 4.
    it = exchange.fetch(None)
    stored = next(it)
    it.close()
    resumed = list(HmaCsvExchange(path, batch_size=4).fetch(stored.checkpoint))
    assert ops([stored, *resumed]) == ops(everything)

    # The same file again: nothing to do.
    assert list(exchange.fetch(everything[-1].checkpoint)) == []


def test_a_new_file_at_the_same_path_is_imported_from_the_start(tmp_path):
    path = big_file(tmp_path, 3)
    done = list(HmaCsvExchange(path).fetch(None))[-1].checkpoint
    path.write_text(DATASET_HEADER + f"pdq,{pdq(7)},c,,\n")
    assert ops(list(HmaCsvExchange(path).fetch(done))) == [("add", "pdq", pdq(7))]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (f"pdq,{pdq(1)[:-1]},c,,", "line 4 pdq value must be 64 hex characters"),
        (f"md5,{'g' * 32},c,,", "line 4 md5 value must be 32 hex characters"),
        (f"PDQ hash,{pdq(1)},c,,", "line 4 signal type 'pdq hash' is not a signal type name"),
        (",,c,,", "line 4 signal type '' is not a signal type name"),
        (f"pdq,{pdq(1)},c,,,,extra", "line 4 has 7 fields, the header 5"),
    ],
)
def test_a_malformed_row_rejects_the_whole_file_naming_the_line(tmp_path, row, problem):
    path = write(
        tmp_path,
        DATASET_HEADER + f"pdq,{pdq(1)},c,,\npdq,{pdq(2)},c,,\n{row}\npdq,{pdq(3)},c,,\n",
    )
    batches: list[UpdateBatch] = []
    with pytest.raises(ExchangeError) as caught:
        batches.extend(HmaCsvExchange(path, batch_size=1).fetch(None))
    assert batches == []  # checked before the first batch: nothing half-imported
    assert caught.value.kind == "data"
    assert str(caught.value) == f"hma_csv: bank.csv {problem}; nothing imported"


def test_bad_op_and_bad_encoding(tmp_path):
    path = write(tmp_path, f"signal_type,signal_str,op\npdq,{pdq(1)},delete\n")
    with pytest.raises(ExchangeError, match="line 2 op must be add or remove, not 'delete'"):
        list(HmaCsvExchange(path).fetch(None))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(f"pdq {pdq(1)}\n".encode() + b"\xff\xfe\x00junk\n")
    with pytest.raises(ExchangeError, match=r"binary.csv line 2 is not UTF-8 text"):
        list(HmaCsvExchange(binary).fetch(None))


def test_file_changed_during_import_stops_it(tmp_path):
    path = big_file(tmp_path, 6)
    it = HmaCsvExchange(path, batch_size=2).fetch(None)
    next(it)
    with path.open("a") as f:
        f.write(f"pdq,{pdq(99)},c,,\n")
    os.utime(path, ns=(0, 0))
    with pytest.raises(ExchangeError, match="changed during import"):
        list(it)


def test_missing_file_and_config(tmp_path):
    with pytest.raises(ExchangeError, match=r"cannot read .*nope.csv: No such file") as caught:
        list(HmaCsvExchange(tmp_path / "nope.csv").fetch(None))
    assert caught.value.kind == "config"
    with pytest.raises(ExchangeError, match="set CONSENTRY_HMA_CSV_PATH"):
        HmaCsvExchange.from_env({})
    with pytest.raises(ExchangeError, match="default signal must be pdq or md5"):
        HmaCsvExchange.from_env(
            {"CONSENTRY_HMA_CSV_PATH": "x.csv", "CONSENTRY_HMA_CSV_DEFAULT_SIGNAL": "sha1"}
        )


def test_from_env(tmp_path):
    path = big_file(tmp_path, 5)
    exchange = HmaCsvExchange.from_env(
        {"CONSENTRY_HMA_CSV_PATH": str(path), "CONSENTRY_HMA_CSV_BATCH_SIZE": "2"}
    )
    assert [len(b.updates) for b in exchange.fetch(None)] == [2, 2, 1]


def test_empty_file_yields_one_empty_batch_then_nothing(tmp_path):
    path = write(tmp_path, DATASET_HEADER)
    batches = list(HmaCsvExchange(path).fetch(None))
    assert [(b.updates, b.more) for b in batches] == [((), False)]
    assert list(HmaCsvExchange(path).fetch(batches[0].checkpoint)) == []
