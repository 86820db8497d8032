"""Finding what a takedown request names, and every copy of it, in the content index.

Copies are found exactly as a bank sweep finds them (``banks.sweep.copies_of``): the same
MD5, or PDQ within the match distance of any stored hash of the image (the crop ladder
included) or of what its rotations and mirrors would hash to. Content already down is
reported as such, so a second case never removes or strikes for it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from consentry.banks.content import ContentIndex, ContentRecord
from consentry.banks.registry import EntryHashes
from consentry.banks.services import entry_hashes
from consentry.banks.sweep import copies_of
from consentry.cases.intake import ContentLocator
from consentry.signals.hashing import Fingerprint


@dataclass
class Located:
    records: dict[str, ContentRecord] = field(default_factory=dict)  # to remove
    identified: set[str] = field(default_factory=set)  # named in the request
    unknown: list[str] = field(default_factory=list)  # named, but not held
    already_removed: list[str] = field(default_factory=list)  # down before this case
    bank: list[EntryHashes] = field(default_factory=list)  # what to bank


def locate(content: ContentIndex, locator: ContentLocator,
           fps: Sequence[Fingerprint] = ()) -> Located:
    """The named items and every copy of them and of the reported images. ``fps`` are
    the reported images when their pixels are at hand (a live request); without them (a
    moderator re-running a case, a job finished after a restart) their stored hashes."""
    found = Located()
    named: list[ContentRecord] = []
    for content_id in locator.content_ids:
        record = content.get(content_id)
        named.append(record) if record else found.unknown.append(content_id)
    for url in locator.urls:
        record = content.by_url(url)
        named.append(record) if record else found.unknown.append(url)
    for record in named:
        hashes = content.stored_hashes(record.content_id)
        if hashes is None:
            continue
        found.bank.append(hashes)
        if record.removed:
            _already_removed(found, record.content_id)
        else:
            found.identified.add(record.content_id)
            found.records[record.content_id] = record
        _add_copies(content, found, hashes)
    for fp in fps:  # the pixels are at hand: also their exact rotations and mirrors
        found.bank.append(entry_hashes(fp))
        _add_copies(content, found, entry_hashes(fp), fp.query_array())
    if not fps:
        for md5, variants in stored_images(locator):
            found.bank.append(EntryHashes(md5=md5, pdq_variants=variants))
            _add_copies(content, found, found.bank[-1])
    for md5 in locator.md5_hashes:
        found.bank.append(EntryHashes(md5=md5.lower()))
        _add_copies(content, found, found.bank[-1])
    for pdq in locator.pdq_hashes:
        found.bank.append(EntryHashes(pdq=pdq.lower()))
        _add_copies(content, found, found.bank[-1])
    return found


def stored_images(locator: ContentLocator) -> list[tuple[str | None,
                                                         tuple[tuple[str, str], ...]]]:
    """The reported images as a case keeps them: MD5 and every indexed PDQ variant
    (cases recorded before variants were kept have the full PDQ only)."""
    if locator.image_variants:
        return [(md5 or None, tuple(variants)) for md5, variants in
                zip(locator.image_md5s, locator.image_variants, strict=False)]
    return [(md5 or None, (("full", pdq),)) for md5, pdq in
            zip(locator.image_md5s, locator.image_pdqs, strict=False)]


def _already_removed(found: Located, content_id: str) -> None:
    if content_id not in found.already_removed:
        found.already_removed.append(content_id)


def _add_copies(content: ContentIndex, found: Located, hashes: EntryHashes,
                exact: np.ndarray | None = None) -> None:
    for record in copies_of(content, hashes, exact=exact, include_removed=True):
        if record.removed:  # down already: the case stands behind it, nothing to do
            _already_removed(found, record.content_id)
            continue
        known = found.records.get(record.content_id)
        if known is None or (record.distance or 0) < (known.distance or 0):
            found.records[record.content_id] = record
