"""A PDQ index saved to a folder together with the id of the last database row it
reflects (its watermark), so that a restart loads the index memory-mapped and reads only
the rows added since. Used by the bank matcher (bank events) and the content index
(content hashes)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from consentry.banks.pdq_index import PDQIndex

log = logging.getLogger(__name__)

_MARKER = "watermark.json"


def load_saved(directory: Path, key: str) -> tuple[PDQIndex, int] | None:
    """The saved index and its watermark, or None when there is none or it is unusable
    (then the caller rebuilds from the database)."""
    marker = directory / _MARKER
    if not marker.exists():
        return None
    try:
        return PDQIndex.load(directory / "index"), int(json.loads(marker.read_text())[key])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("saved index at %s unusable (%s); rebuilding", directory, exc)
        return None


def save(directory: Path, index: PDQIndex, key: str, watermark: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    index.save(directory / "index")
    tmp = directory / f"{_MARKER}.tmp"
    tmp.write_text(json.dumps({key: watermark}))
    os.replace(tmp, directory / _MARKER)  # atomic: never a torn watermark
