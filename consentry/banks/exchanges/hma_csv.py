"""HMA / ThreatExchange hash files: CSV exports and plain signal lists.

Two layouts, both as threatexchange writes or reads them:

* ``threatexchange dataset --csv`` (HMA's export): a header naming ``signal_type`` and
  ``signal_str`` (``signal_value``, ``signal`` and ``hash`` are accepted too), optional
  ``collab``, ``category``, ``tags``, plus Consentry's optional ``id`` and ``op``.
* threatexchange's local-file exchange: one signal a line, ``pdq <hash>``, also
  ``pdq,<hash>``, or a bare hash when the exchange has a default signal type.

A malformed row rejects the whole file before anything is yielded (the file is checked
in full first), naming its line: a hand-edited file with a typo must be fixed, not half
imported. Rows of signal types Consentry does not match (``url``, ``raw_text``...) are
skipped and reported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from consentry.banks.exchanges.base import (
    HASH_LENGTHS,
    ExchangeError,
    HashUpdate,
    Op,
    Signal,
    SkippedRecord,
    UpdateBatch,
    env_number,
    normalise_hash,
)

ENV_PATH = "CONSENTRY_HMA_CSV_PATH"
ENV_BATCH_SIZE = "CONSENTRY_HMA_CSV_BATCH_SIZE"
ENV_DEFAULT_SIGNAL = "CONSENTRY_HMA_CSV_DEFAULT_SIGNAL"

_NAME = "hma_csv"
# threatexchange SignalType names (and plain "md5") to Consentry signals.
_SIGNAL_NAMES: Mapping[str, Signal] = {
    "pdq": "pdq",
    "md5": "md5",
    "video_md5": "md5",
    "photo_md5": "md5",
}
_VALUE_COLUMNS = ("signal_str", "signal_value", "signal", "hash")
_SIGNAL_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")
# threatexchange's SignalOpinionCategory: the exporter judged the signal a false positive.
_NEGATIVE_CATEGORY = "NEGATIVE_CLASS"


@dataclass(frozen=True)
class _Row:
    line: int  # physical line where the row ends, for error messages
    result: HashUpdate | SkippedRecord


class HmaCsvExchange:
    """Imports one hash file in batches; a checkpoint is the rows done in that file."""

    name = _NAME

    def __init__(
        self, path: str | Path, *, batch_size: int = 1000, default_signal: Signal | None = None
    ) -> None:
        if batch_size < 1:
            raise ExchangeError("batch size must be positive", exchange=_NAME, kind="config")
        if default_signal is not None and default_signal not in HASH_LENGTHS:
            raise ExchangeError(
                f"default signal must be pdq or md5, not {default_signal!r}",
                exchange=_NAME,
                kind="config",
            )
        self.path = Path(path)
        self._batch_size = batch_size
        self._default_signal = default_signal

    def __repr__(self) -> str:
        return f"HmaCsvExchange(path={str(self.path)!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HmaCsvExchange:
        """Configure from CONSENTRY_HMA_CSV_* variables (the path is required)."""
        env = os.environ if env is None else env
        if not env.get(ENV_PATH):
            raise ExchangeError(f"set {ENV_PATH}", exchange=_NAME, kind="config")
        default = env.get(ENV_DEFAULT_SIGNAL) or None
        return cls(
            env[ENV_PATH],
            batch_size=int(env_number(env, ENV_BATCH_SIZE, 1000, exchange=_NAME)),
            default_signal=default,  # type: ignore[arg-type]  # validated in __init__
        )

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]:
        """Rows after ``checkpoint`` in batches of ``batch_size``.

        The checkpoint names the file by content (SHA-256) and counts the rows done. A
        different file at the same path is imported from its first row; the same file,
        fully imported, yields nothing.
        """
        done_digest, done_rows = _parse_checkpoint(checkpoint)
        # Pass 1: check every row and fingerprint the file, so a bad row rejects it all.
        digest, total, stat = self._scan()
        start = done_rows if done_digest == digest else 0
        if start >= total and done_digest == digest:
            return
        # Pass 2: stream. The file must not change between passes or batches.
        updates: list[HashUpdate] = []
        skipped: list[SkippedRecord] = []
        rows = 0
        for index, row in enumerate(self._rows()):
            if index < start:
                continue
            if isinstance(row.result, HashUpdate):
                updates.append(row.result)
            else:
                skipped.append(row.result)
            rows = index + 1
            if len(updates) + len(skipped) == self._batch_size:
                self._check_unchanged(stat)
                yield UpdateBatch(
                    tuple(updates), _checkpoint(digest, rows), rows < total, tuple(skipped)
                )
                updates, skipped = [], []
        if updates or skipped or rows == 0:
            self._check_unchanged(stat)
            yield UpdateBatch(tuple(updates), _checkpoint(digest, total), False, tuple(skipped))

    def _scan(self) -> tuple[str, int, os.stat_result]:
        stat = self._stat()
        sha = hashlib.sha256()
        with self._open() as raw:
            for chunk in iter(lambda: raw.read(1 << 20), b""):
                sha.update(chunk)
        total = sum(1 for _ in self._rows())
        return sha.hexdigest(), total, stat

    def _check_unchanged(self, before: os.stat_result) -> None:
        after = self._stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise ExchangeError(
                f"{self.path} changed during import; run the import again",
                exchange=_NAME,
                kind="data",
            )

    def _stat(self) -> os.stat_result:
        try:
            return self.path.stat()
        except OSError as exc:
            raise ExchangeError(
                f"cannot read {self.path}: {exc.strerror}", exchange=_NAME, kind="config"
            ) from None

    def _open(self) -> io.BufferedReader:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise ExchangeError(
                f"cannot read {self.path}: {exc.strerror}", exchange=_NAME, kind="config"
            ) from None

    def _rows(self) -> Iterator[_Row]:
        """Every data row, parsed; raises ExchangeError naming the first bad line."""
        with self._open() as raw:
            reader = csv.reader(self._decoded_lines(raw))
            header: dict[str, int] | None = None
            first = True
            try:
                for fields in reader:
                    line = reader.line_num
                    if not fields or not "".join(fields).strip():
                        continue
                    if fields[0].lstrip().startswith("#"):
                        continue
                    if first:
                        first = False
                        header = self._header(fields, line)
                        if header is not None:
                            continue
                    yield _Row(line, self._parse(fields, header, line))
            except csv.Error as exc:
                raise self._bad(reader.line_num, f"is not valid CSV ({exc})") from None

    def _decoded_lines(self, raw: io.BufferedReader) -> Iterator[str]:
        # Decoded line by line (not by a TextIOWrapper, which decodes 8 KiB ahead) so
        # that an encoding error names its own line.
        for number, line in enumerate(raw, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise self._bad(number, "is not UTF-8 text") from None
            yield text.removeprefix("\ufeff") if number == 1 else text

    def _header(self, fields: list[str], line: int) -> dict[str, int] | None:
        names = [f.strip().lower() for f in fields]
        if "signal_type" not in names:
            return None
        columns = {name: i for i, name in enumerate(names)}
        if not any(c in columns for c in _VALUE_COLUMNS):
            raise self._bad(line, f"header lacks a value column ({', '.join(_VALUE_COLUMNS)})")
        return columns

    def _parse(
        self, fields: list[str], header: dict[str, int] | None, line: int
    ) -> HashUpdate | SkippedRecord:
        metadata: dict[str, str] = {}
        external_id = ""
        op: Op = "add"
        if header is not None:
            if len(fields) > len(header):
                raise self._bad(line, f"has {len(fields)} fields, the header {len(header)}")

            def column(*names: str) -> str:
                for name in names:
                    i = header.get(name)
                    if i is not None and i < len(fields):
                        return fields[i].strip()
                return ""

            type_name, raw_value = column("signal_type").lower(), column(*_VALUE_COLUMNS)
            external_id = column("id")
            for name in ("collab", "category", "tags"):
                if column(name):
                    metadata[name] = column(name)
            op_text = column("op").lower()
            if op_text not in ("", "add", "remove"):
                raise self._bad(line, f"op must be add or remove, not {op_text!r}")
            if op_text == "remove" or metadata.get("category") == _NEGATIVE_CATEGORY:
                op = "remove"
        else:
            if len(fields) == 1:
                fields = fields[0].split()
            if len(fields) == 2:
                type_name, raw_value = fields[0].strip().lower(), fields[1].strip()
            elif len(fields) == 1 and self._default_signal:
                type_name, raw_value = self._default_signal, fields[0].strip()
            else:
                raise self._bad(
                    line,
                    "is neither 'signal_type hash' nor 'signal_type,hash'"
                    + ("" if self._default_signal else " (no default signal type configured)"),
                )
        if not _SIGNAL_TYPE_NAME.fullmatch(type_name):
            raise self._bad(line, f"signal type {type_name!r} is not a signal type name")
        signal = _SIGNAL_NAMES.get(type_name)
        if signal is None:
            return SkippedRecord(
                external_id or f"{type_name}:{raw_value}",
                f"line {line}: unsupported signal type {type_name}",
            )
        value = normalise_hash(signal, raw_value)
        if value is None:
            raise self._bad(
                line, f"{type_name} value must be {HASH_LENGTHS[signal]} hex characters"
            )
        metadata["line"] = str(line)
        return HashUpdate(signal, value, external_id or f"{signal}:{value}", op, metadata)

    def _bad(self, line: int, problem: str) -> ExchangeError:
        return ExchangeError(
            f"{self.path.name} line {line} {problem}; nothing imported",
            exchange=_NAME,
            kind="data",
        )


def _checkpoint(digest: str, rows: int) -> str:
    return json.dumps({"v": 1, "sha256": digest, "rows": rows})


def _parse_checkpoint(checkpoint: str | None) -> tuple[str | None, int]:
    if checkpoint is None:
        return None, 0
    try:
        data = json.loads(checkpoint)
        digest, rows = data["sha256"], data["rows"]
        if data.get("v") != 1 or not isinstance(digest, str) or not isinstance(rows, int):
            raise ValueError(checkpoint)
    except (ValueError, TypeError, KeyError):
        raise ExchangeError(
            "checkpoint is not one this client wrote", exchange=_NAME, kind="checkpoint"
        ) from None
    return digest, rows
