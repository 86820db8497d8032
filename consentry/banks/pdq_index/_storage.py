"""On-disk format: memory-mappable base generation plus an append-only change log.

Directory layout::

    manifest.json          {"format": 1, "generation": g, "count": n, "nbits": [...]}
    base-<g>/hashes.npy    (n, 32) uint8, rows ordered by id
    base-<g>/ids.npy       (n,) int64, ascending
    base-<g>/offsets.npy   concatenated CSR directories, uint32
    base-<g>/rows.npy      (m, n) uint32, row numbers sorted by chunk key per table
    log-<g>.bin            adds/removes applied since generation g was written

A new generation is fully written and fsynced before ``manifest.json`` is atomically
replaced, so a crash leaves either the old generation plus its log or the new one.
Log records carry a CRC; a torn tail from a crash mid-append is truncated on open.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

FORMAT = 1
MANIFEST = "manifest.json"
OP_ADD = 1
OP_REMOVE = 2
FLAG_REPLACE = 1
_LOG_MAGIC = b"PDQLOG1\n"
# magic, op, flags, count, crc32(op, flags, count, payload)
_REC = struct.Struct("<4sBBxxII")
_REC_MAGIC = b"PDQR"
BASE_FILES = ("hashes", "ids", "offsets", "rows")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def base_dir(root: Path, generation: int) -> Path:
    return root / f"base-{generation:06d}"


def log_path(root: Path, generation: int) -> Path:
    return root / f"log-{generation:06d}.bin"


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def write_generation(
    root: Path, generation: int, arrays: dict[str, np.ndarray], nbits: list[int]
) -> None:
    """Write base arrays and an empty log for ``generation``, then publish it."""
    root.mkdir(parents=True, exist_ok=True)
    gdir = base_dir(root, generation)
    if gdir.exists():  # leftover of a crashed compaction that was never published
        shutil.rmtree(gdir)
    gdir.mkdir()
    for name in BASE_FILES:
        with open(gdir / f"{name}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    _fsync_dir(gdir)
    with open(log_path(root, generation), "wb") as fh:
        fh.write(_LOG_MAGIC)
        fh.flush()
        os.fsync(fh.fileno())
    manifest = {
        "format": FORMAT,
        "generation": generation,
        "count": int(arrays["ids"].shape[0]),
        "nbits": list(nbits),
    }
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, root / MANIFEST)
    _fsync_dir(root)
    # Older generations are garbage now; mmaps of them stay valid until unmapped.
    keep = {base_dir(root, generation).name, log_path(root, generation).name}
    for entry in root.iterdir():
        if entry.name.startswith(("base-", "log-")) and entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def load_generation(root: Path, generation: int, mmap: bool) -> dict[str, np.ndarray]:
    gdir = base_dir(root, generation)
    mode: Literal["r"] | None = "r" if mmap else None
    return {
        name: np.load(gdir / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
        for name in BASE_FILES
    }


def encode_record(op: int, flags: int, ids: np.ndarray, hashes: np.ndarray | None) -> bytes:
    payload = ids.astype("<i8").tobytes()
    if hashes is not None:
        payload += np.ascontiguousarray(hashes, dtype=np.uint8).tobytes()
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BBI", op, flags, len(ids))))
    return _REC.pack(_REC_MAGIC, op, flags, len(ids), crc) + payload


def iter_log(path: Path) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
    """Yield (op, flags, ids, hashes) records; truncate a torn or corrupt tail."""
    data = path.read_bytes()
    if not data.startswith(_LOG_MAGIC):
        raise ValueError(f"{path} is not a PDQ index log")
    pos = len(_LOG_MAGIC)
    good = pos
    while pos + _REC.size <= len(data):
        magic, op, flags, count, crc = _REC.unpack_from(data, pos)
        size = count * (8 + (32 if op == OP_ADD else 0))
        body = data[pos + _REC.size : pos + _REC.size + size]
        if (
            magic != _REC_MAGIC
            or op not in (OP_ADD, OP_REMOVE)
            or len(body) != size
            or zlib.crc32(body, zlib.crc32(struct.pack("<BBI", op, flags, count))) != crc
        ):
            break
        ids = np.frombuffer(body[: 8 * count], dtype="<i8").astype(np.int64)
        hashes = None
        if op == OP_ADD:
            hashes = np.frombuffer(body[8 * count :], dtype=np.uint8).reshape(count, 32).copy()
        yield op, flags, ids, hashes
        pos += _REC.size + size
        good = pos
    if good != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good)
            fh.flush()
            os.fsync(fh.fileno())


class LogWriter:
    """Append-only writer; each record is one write() followed by fsync."""

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self._fh = open(path, "ab")  # noqa: SIM115 - lives as long as the index

    def append(self, record: bytes) -> None:
        self._fh.write(record)
        self._fh.flush()
        if self.durable:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
