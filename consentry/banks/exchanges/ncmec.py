"""NCMEC hash-sharing API (XML over HTTP, basic auth): hashes of known CSAM.

Built on ``threatexchange``'s ``NCMECHashAPI`` (URLs, basic auth, XML fetching with
namespaces stripped, entry parsing, "next" paging links). Entries are snapshots keyed by
member id and entry id; ``deletedImage``/``deletedVideo`` tombstones become removes.
"""

from __future__ import annotations

import json
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from threatexchange.exchanges.clients.ncmec.hash_api import (
    FeedbackType,
    GetEntriesNextInfo,
    NCMECEndpoint,
    NCMECEntryType,
    NCMECEntryUpdate,
    NCMECEnvironment,
    NCMECHashAPI,
    _XMLWrapper,
)

from consentry.banks.exchanges.base import (
    ExchangeError,
    HashUpdate,
    HttpSettings,
    Op,
    Signal,
    SkippedRecord,
    UpdateBatch,
    env_number,
    normalise_hash,
    request_error,
)

log = logging.getLogger(__name__)

ENV_USERNAME = "CONSENTRY_NCMEC_USERNAME"
ENV_PASSWORD = "CONSENTRY_NCMEC_PASSWORD"
ENV_ENVIRONMENT = "CONSENTRY_NCMEC_ENVIRONMENT"
ENV_BASE_URL = "CONSENTRY_NCMEC_BASE_URL"
ENV_TIMEOUT_S = "CONSENTRY_NCMEC_TIMEOUT_S"
ENV_REMOVE_AFTER_DOWNVOTES = "CONSENTRY_NCMEC_REMOVE_AFTER_DOWNVOTES"

_NAME = "ncmec"
# Every environment the installed threatexchange knows: Industry, Industry_Exploitative,
# LawEnforcement, NGO, Exploitative, NGO_Generative_AI, NGO_Generative_AI_Exploitative,
# and a test_ twin of each.
ENVIRONMENTS: tuple[str, ...] = tuple(e.name for e in NCMECEnvironment)
# Which fingerprints Consentry matches, per entry type (PhotoDNA, SHA1, TMK are not).
_IMPORTED: Mapping[NCMECEntryType, tuple[Signal, ...]] = {
    NCMECEntryType.image: ("pdq", "md5"),
    NCMECEntryType.video: ("md5",),
}
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_STALE_CURSOR_STATUSES = {400, 404, 410}
# NCMEC advises against keeping paging URLs long; threatexchange trusts them for 12 h.
CURSOR_TTL_S = 12 * 3600
# Entries sort by id, not time, so a window is only done once fully paged; new entries
# within a few seconds of "now" may not be visible yet.
_END_MARGIN_S = 5


class _NCMECClient(NCMECHashAPI):
    """threatexchange's client pointed at ``base_url`` with our timeouts and retries."""

    def __init__(
        self,
        username: str,
        password: str,
        environment: NCMECEnvironment,
        base_url: str | None,
        http: HttpSettings,
    ) -> None:
        super().__init__(username, password, environment)
        if base_url:
            # No constructor argument for this; every URL is built from _base_url.
            self._base_url = base_url
        self._http = http

    def _get_session(self) -> requests.Session:
        # Replaces its 60 s adapter, which also retries read timeouts 4 times.
        session = super()._get_session()
        session.mount(self._base_url, self._http.adapter())
        return session


@dataclass(frozen=True)
class _Page:
    entries: tuple[NCMECEntryUpdate | SkippedRecord, ...]
    next: str  # relative URL of the next page, "" when the window is done
    estimated_total: int  # entries in the whole window, from the "next" link


class NCMECExchange:
    """Imports and keeps in sync one NCMEC hash-sharing environment."""

    name = _NAME

    def __init__(
        self,
        username: str,
        password: str,
        environment: NCMECEnvironment | str,
        *,
        base_url: str | None = None,
        http: HttpSettings | None = None,
        remove_after_downvotes: int | None = None,
        max_entries_per_window: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not username or not password:
            raise ExchangeError(
                "username and password are both required", exchange=_NAME, kind="config"
            )
        if base_url is not None and not base_url.startswith(("https://", "http://")):
            raise ExchangeError(
                "base URL must start with https:// or http://", exchange=_NAME, kind="config"
            )
        self.environment = _environment(environment)
        self.base_url = (base_url or self.environment.value).rstrip("/")
        self._secrets = (password, username)
        self._http = http or HttpSettings()
        self._remove_after_downvotes = remove_after_downvotes
        self._max_entries = max_entries_per_window
        self._clock = clock
        self._client = _NCMECClient(username, password, self.environment, self.base_url, self._http)

    def __repr__(self) -> str:  # the default repr would print the password
        return f"NCMECExchange(environment={self.environment.name}, base_url={self.base_url!r})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, http: HttpSettings | None = None
    ) -> NCMECExchange:
        """Configure from CONSENTRY_NCMEC_* variables (user, password, environment)."""
        env = os.environ if env is None else env
        required = (ENV_USERNAME, ENV_PASSWORD, ENV_ENVIRONMENT)
        missing = [k for k in required if not env.get(k)]
        if missing:
            raise ExchangeError(f"set {', '.join(missing)}", exchange=_NAME, kind="config")
        if http is None:
            http = HttpSettings(timeout_s=env_number(env, ENV_TIMEOUT_S, 30.0, exchange=_NAME))
        downvotes = env.get(ENV_REMOVE_AFTER_DOWNVOTES)
        return cls(
            env[ENV_USERNAME],
            env[ENV_PASSWORD],
            env[ENV_ENVIRONMENT],
            base_url=env.get(ENV_BASE_URL) or None,
            http=http,
            remove_after_downvotes=(
                int(env_number(env, ENV_REMOVE_AFTER_DOWNVOTES, 1, exchange=_NAME))
                if downvotes
                else None
            ),
        )

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]:
        """Entries changed since ``checkpoint``, one batch per page.

        NCMEC pages a time window by entry id, not by time, so the only safe resume
        points are a finished window (``from``) or a paging URL for the same window.
        Windows shrink when a window holds too many entries and grow when few.
        """
        state = _parse_checkpoint(checkpoint)
        end = int(self._clock()) - _END_MARGIN_S
        start = state["from"]
        if state["next"] and self._clock() - state["next_at"] <= CURSOR_TTL_S:
            resumed = yield from self._resume(start, state["to"], state["next"], end)
            if resumed:
                start = state["to"]
        window = max(1, end - start)
        while start < end:
            to = min(end, start + window)
            first = self._get_page(start, to, "")
            if first.next and first.estimated_total > self._max_entries and to - start > 1:
                # Too big to page through in one cursor: retry a quarter of the window.
                window = max(1, (to - start) // 4)
                log.info(
                    "ncmec: ~%d entries in window, shrinking to %d s", first.estimated_total, window
                )
                continue
            yield from self._window_batches(first, start, to, end)
            if first.estimated_total < self._max_entries // 4:
                window *= 2
            start = to

    def _resume(self, start: int, to: int, next_: str,
                end: int) -> Generator[UpdateBatch, None, bool]:
        """Finish the window a mid-window checkpoint was paging; False if the cursor died."""
        try:
            page = self._get_page(start, to, next_)
        except ExchangeError as exc:
            if exc.kind == "http" and exc.status in _STALE_CURSOR_STATUSES:
                # Replaying the window only repeats updates; skipping it could lose some.
                log.warning("ncmec: paging URL refused (%s); replaying window", exc.status)
                return False
            raise
        yield from self._window_batches(page, start, to, end)
        return True

    def _window_batches(self, page: _Page, start: int, to: int, end: int) -> Iterator[UpdateBatch]:
        while True:
            updates: list[HashUpdate] = []
            skipped: list[SkippedRecord] = []
            for entry in page.entries:
                if isinstance(entry, SkippedRecord):
                    skipped.append(entry)
                    continue
                new, bad = _entry_updates(
                    entry, self.environment.name, self._remove_after_downvotes
                )
                updates += new
                skipped += bad
            if page.next:
                checkpoint = _checkpoint(start, to, page.next, int(self._clock()))
            else:
                checkpoint = _checkpoint(to, None, None, None)
            yield UpdateBatch(
                updates=tuple(updates),
                checkpoint=checkpoint,
                more=bool(page.next) or to < end,
                skipped=tuple(skipped),
            )
            if not page.next:
                return
            previous = page.next
            page = self._get_page(start, to, page.next)
            if page.next == previous:
                raise ExchangeError(
                    "entries: server returned the same next link twice; stopping rather than loop",
                    exchange=_NAME,
                    kind="protocol",
                )

    def _get_page(self, start: int, to: int, next_: str) -> _Page:
        if next_ and not next_.startswith("/"):
            raise ExchangeError(
                "entries: next link is not a path on the same server",
                exchange=_NAME,
                kind="protocol",
            )
        what = "entries"
        try:
            # Not get_entries(): it formats local time with a "Z" suffix (wrong windows
            # off UTC, a gap or overlap at DST changes) and raises a bare Exception.
            root = self._client._get(
                NCMECEndpoint.entries,
                next_=next_,
                **{"from": _date_format(start), "to": _date_format(to)},
            )
        except requests.RequestException as exc:
            raise request_error(
                exc,
                exchange=_NAME,
                what=what,
                timeout_s=self._http.timeout_s,
                secrets=self._secrets,
            ) from None
        except ET.ParseError as exc:
            raise ExchangeError(
                f"{what}: response is not XML ({exc})", exchange=_NAME, kind="protocol"
            ) from None
        return _parse_page(root)


def _parse_page(root: ET.Element) -> _Page:
    if root.tag != "queryResult":
        raise ExchangeError(
            f"entries: expected a <queryResult> document, got <{root.tag}>",
            exchange=_NAME,
            kind="protocol",
        )
    xml = _XMLWrapper(root)
    entries: list[NCMECEntryUpdate | SkippedRecord] = []
    for group in (xml.maybe("images"), xml.maybe("videos")):
        if not group:
            continue
        for child in group:
            try:
                entries.append(NCMECEntryUpdate.from_xml(child))
            except (AssertionError, IndexError, ValueError, TypeError) as exc:
                # One odd entry must not wedge the feed; it is reported, not hidden.
                member = child.maybe("member").element.get("id", "?")
                entry_id = child.maybe("id").element.text or "?"
                reason = f"unparsable <{child.tag}> entry ({type(exc).__name__}: {exc})"
                entries.append(SkippedRecord(f"{member}-{entry_id}", reason))
    next_ = (xml.maybe("paging", "next").element.text or "").strip()
    info = GetEntriesNextInfo.from_next(next_) if next_ else None
    estimated = len(entries) + (info.max - info.start if info else 0)
    return _Page(tuple(entries), next_, estimated)


def _entry_updates(
    entry: NCMECEntryUpdate, environment: str, remove_after_downvotes: int | None
) -> tuple[list[HashUpdate], list[SkippedRecord]]:
    external_id = f"{entry.member_id}-{entry.id}"
    metadata = {
        "member_id": str(entry.member_id),
        "entry_type": entry.entry_type.value,
        "environment": environment,
    }
    if entry.classification:
        metadata["classification"] = entry.classification
    fingerprints = {k.lower(): v for k, v in entry.fingerprints.items()}
    signals = _IMPORTED[entry.entry_type]
    if entry.deleted:
        # Tombstones usually carry no fingerprints: remove by record, whatever it held.
        return [
            HashUpdate(
                sig,
                normalise_hash(sig, fingerprints.get(sig)) or "",
                external_id,
                "remove",
                metadata,
            )
            for sig in signals
        ], []
    updates: list[HashUpdate] = []
    skipped: list[SkippedRecord] = []
    for sig in signals:
        if sig not in fingerprints:
            continue
        value = normalise_hash(sig, fingerprints[sig])
        if value is None:
            skipped.append(SkippedRecord(external_id, f"malformed {sig} fingerprint"))
            continue
        upvoters, downvoters = _votes(entry, sig)
        op: Op = "add"
        if remove_after_downvotes is not None and len(downvoters) >= remove_after_downvotes:
            op = "remove"  # other members dispute it; opt-in, see docs/exchanges.md
        updates.append(
            HashUpdate(
                sig,
                value,
                external_id,
                op,
                {**metadata, "upvotes": str(len(upvoters)), "downvotes": str(len(downvoters))},
            )
        )
    if not updates and not skipped:
        skipped.append(SkippedRecord(external_id, "no PDQ or MD5 fingerprint"))
    return updates, skipped


def _votes(entry: NCMECEntryUpdate, signal: str) -> tuple[set[int], set[int]]:
    """Distinct members who upvoted / downvoted this fingerprint type."""
    up: set[int] = set()
    down: set[int] = set()
    for fingerprint_type, feedbacks in entry.feedback.items():
        if fingerprint_type.lower() != signal:
            continue
        for feedback in feedbacks:
            target = up if feedback.feedback_type == FeedbackType.upvote else down
            target.add(feedback.member.esp_id)
    return up, down


def _environment(value: NCMECEnvironment | str) -> NCMECEnvironment:
    if isinstance(value, NCMECEnvironment):
        return value
    for env in NCMECEnvironment:
        if env.name.lower() == value.strip().lower():
            return env
    raise ExchangeError(
        f"unknown environment {value!r}; choose one of {', '.join(ENVIRONMENTS)}",
        exchange=_NAME,
        kind="config",
    )


def _date_format(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(_DATE_FORMAT)


def _checkpoint(start: int, to: int | None, next_: str | None, next_at: int | None) -> str:
    return json.dumps({"v": 1, "from": start, "to": to, "next": next_, "next_at": next_at})


def _parse_checkpoint(checkpoint: str | None) -> dict[str, Any]:
    if checkpoint is None:
        return {"from": 0, "to": None, "next": None, "next_at": None}
    try:
        data = json.loads(checkpoint)
        ok = (
            data.get("v") == 1
            and isinstance(data["from"], int)
            and (
                data["next"] is None
                or (
                    isinstance(data["next"], str)
                    and isinstance(data["to"], int)
                    and isinstance(data["next_at"], int)
                )
            )
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise ExchangeError(
            "checkpoint is not one this client wrote", exchange=_NAME, kind="checkpoint"
        )
    return data
