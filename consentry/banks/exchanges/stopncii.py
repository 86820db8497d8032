"""StopNCII.org hash exchange: victims' hashes of their own intimate images.

Built on ``threatexchange``'s ``StopNCIIAPI`` (URL and header building, FetchHashes
parameters, response parsing, paging fields). Records are snapshots keyed by signal type
and hash: a later record for the same hash replaces the earlier one, so a record whose
``hashStatus`` is ``Withdrawn`` or ``Deleted`` becomes ``op="remove"``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dacite
import requests
from threatexchange.exchanges.clients.stopncii.api import (
    FetchHashesResponse,
    StopNCIIAPI,
    StopNCIICaseStatus,
    StopNCIIEndpoint,
    StopNCIISignalType,
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

ENV_SUBSCRIPTION_KEY = "CONSENTRY_STOPNCII_SUBSCRIPTION_KEY"
ENV_FETCH_STATUS_KEY = "CONSENTRY_STOPNCII_FETCH_STATUS_KEY"
ENV_BASE_URL = "CONSENTRY_STOPNCII_BASE_URL"
ENV_TIMEOUT_S = "CONSENTRY_STOPNCII_TIMEOUT_S"
ENV_PAGE_SIZE = "CONSENTRY_STOPNCII_PAGE_SIZE"

_NAME = "stopncii"
_SIGNALS: Mapping[StopNCIISignalType, Signal] = {
    StopNCIISignalType.ImagePDQ: "pdq",
    StopNCIISignalType.VideoMD5: "md5",
}
_REMOVED = {StopNCIICaseStatus.Withdrawn, StopNCIICaseStatus.Deleted}
_LIVE = {StopNCIICaseStatus.Received, StopNCIICaseStatus.Active}
# StopNCII answers 400 (or 404/410) when a page token has expired.
_STALE_TOKEN_STATUSES = {400, 404, 410}


class _StopNCIIClient(StopNCIIAPI):
    """threatexchange's client with our timeouts and retries, keeping the raw body.

    Its own session mounts a 60 s adapter that retries read timeouts 4 times (5 minutes
    on a hung server); ours replaces it for the same URL prefix.
    """

    def __init__(
        self, subscription_key: str, fetch_status_key: str, base_url: str, http: HttpSettings
    ) -> None:
        super().__init__(subscription_key, fetch_status_key, base_url_override=base_url)
        self._http = http
        self.last_body: Any = None

    def _get_session(self, endpoint: StopNCIIEndpoint) -> requests.Session:
        session = super()._get_session(endpoint)
        session.mount(self._base_url, self._http.adapter())
        return session

    def _get(self, endpoint: StopNCIIEndpoint, **params: Any) -> Any:
        self.last_body = None
        self.last_body = super()._get(endpoint, **params)
        return self.last_body


class StopNCIIExchange:
    """Imports and keeps in sync the StopNCII.org hash list (FetchHashes)."""

    name = _NAME
    DEFAULT_BASE_URL = StopNCIIAPI.BASE_URL

    def __init__(
        self,
        subscription_key: str,
        fetch_status_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        page_size: int = 800,
        http: HttpSettings | None = None,
    ) -> None:
        if not subscription_key or not fetch_status_key:
            raise ExchangeError(
                "subscription key and fetch status key are both required",
                exchange=_NAME,
                kind="config",
            )
        if not base_url.startswith(("https://", "http://")):
            raise ExchangeError(
                "base URL must start with https:// or http://", exchange=_NAME, kind="config"
            )
        if page_size < 1:
            raise ExchangeError("page size must be positive", exchange=_NAME, kind="config")
        self._secrets = (subscription_key, fetch_status_key)
        self._http = http or HttpSettings()
        self._page_size = page_size
        self.base_url = base_url.rstrip("/")
        self._client = _StopNCIIClient(
            subscription_key, fetch_status_key, self.base_url, self._http
        )

    def __repr__(self) -> str:  # the default repr would print the keys
        return f"StopNCIIExchange(base_url={self.base_url!r})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, http: HttpSettings | None = None
    ) -> StopNCIIExchange:
        """Configure from CONSENTRY_STOPNCII_* variables (keys are required)."""
        env = os.environ if env is None else env
        missing = [k for k in (ENV_SUBSCRIPTION_KEY, ENV_FETCH_STATUS_KEY) if not env.get(k)]
        if missing:
            raise ExchangeError(f"set {' and '.join(missing)}", exchange=_NAME, kind="config")
        if http is None:
            http = HttpSettings(timeout_s=env_number(env, ENV_TIMEOUT_S, 30.0, exchange=_NAME))
        return cls(
            env[ENV_SUBSCRIPTION_KEY],
            env[ENV_FETCH_STATUS_KEY],
            base_url=env.get(ENV_BASE_URL) or cls.DEFAULT_BASE_URL,
            page_size=int(env_number(env, ENV_PAGE_SIZE, 800, exchange=_NAME)),
            http=http,
        )

    def fetch(self, checkpoint: str | None) -> Iterator[UpdateBatch]:
        """Every page changed since ``checkpoint``; one batch per FetchHashes page.

        A mid-sync checkpoint holds the sync's start timestamp and the next page token
        (not the page's ``nextSetTimestamp``, which StopNCII does not keep monotonic
        across pages); a finished sync's holds the last page's ``nextSetTimestamp``.
        """
        start, token = _parse_checkpoint(checkpoint)
        replayed = False
        while True:
            try:
                response, records = self._fetch_page(start, token)
            except ExchangeError as exc:
                stale = token and exc.kind == "http" and exc.status in _STALE_TOKEN_STATUSES
                if stale and not replayed:
                    # Tokens expire; records are snapshots, so replaying the sync from its
                    # start timestamp is safe (only repeats updates) where skipping is not.
                    log.warning("stopncii: page token refused (%s); replaying sync", exc.status)
                    token, replayed = None, True
                    continue
                raise
            updates: list[HashUpdate] = []
            skipped: list[SkippedRecord] = []
            for record in records:
                result = _record_update(record)
                if isinstance(result, HashUpdate):
                    updates.append(result)
                else:
                    skipped.append(result)
            if response.hasMoreRecords and response.nextPageToken:
                if response.nextPageToken == token:
                    raise ExchangeError(
                        "FetchHashes returned the page token it was given; stopping "
                        "rather than loop",
                        exchange=_NAME,
                        kind="protocol",
                    )
                next_start, token = start, response.nextPageToken
            elif response.hasMoreRecords:
                # More records but no cursor: continue from the timestamp, as
                # threatexchange does, unless that would not move forward.
                if response.nextSetTimestamp <= start:
                    raise ExchangeError(
                        "FetchHashes says more records remain but gave neither a page "
                        "token nor a later nextSetTimestamp",
                        exchange=_NAME,
                        kind="protocol",
                    )
                next_start, token = response.nextSetTimestamp, None
            else:
                next_start, token = response.nextSetTimestamp, None
            more = response.hasMoreRecords
            yield UpdateBatch(
                updates=tuple(updates),
                checkpoint=_checkpoint(next_start, token),
                more=more,
                skipped=tuple(skipped),
            )
            if not more:
                return
            start = next_start

    def _fetch_page(self, start: int, token: str | None) -> tuple[FetchHashesResponse, list[Any]]:
        what = "FetchHashes"
        try:
            response = self._client.fetch_hashes(
                page_size=self._page_size, start_timestamp=start, next_page=token or ""
            )
        except requests.exceptions.JSONDecodeError as exc:
            # Also a RequestException: must come first.
            raise ExchangeError(
                f"{what}: response is not JSON ({exc.msg} at position {exc.pos})",
                exchange=_NAME,
                kind="protocol",
            ) from None
        except requests.RequestException as exc:
            raise request_error(
                exc,
                exchange=_NAME,
                what=what,
                timeout_s=self._http.timeout_s,
                secrets=self._secrets,
            ) from None
        except (AttributeError, TypeError, KeyError, ValueError, dacite.DaciteError) as exc:
            # Valid JSON, wrong shape: threatexchange's parser fails in many ways.
            raise ExchangeError(
                f"{what}: response does not have the FetchHashes shape "
                f"({type(exc).__name__}: {str(exc)[:200]})",
                exchange=_NAME,
                kind="protocol",
            ) from None
        body = self._client.last_body
        raw_records = body.get("hashRecords") if isinstance(body, dict) else None
        if raw_records is None:
            raw_records = []
        if not isinstance(raw_records, list):
            raise ExchangeError(
                f"{what}: hashRecords is not a list", exchange=_NAME, kind="protocol"
            )
        return response, raw_records


def _record_update(record: Any) -> HashUpdate | SkippedRecord:
    """Map one raw hashRecord to an update.

    Parsed from the raw JSON rather than threatexchange's dataclasses: its parser drops a
    whole record when any CSP feedback carries a value its enum lacks ("Undefined" occurs
    in real data), which would silently lose a victim's hash or, worse, a withdrawal.
    """
    if not isinstance(record, dict):
        return SkippedRecord("?", "hash record is not a JSON object")
    signal_name = record.get("signalType")
    raw_value = record.get("hashValue")
    external_id = f"{signal_name}:{str(raw_value).strip().lower()}"
    try:
        signal_type = StopNCIISignalType(signal_name)
        status = StopNCIICaseStatus(record.get("hashStatus"))
    except ValueError as exc:
        return SkippedRecord(external_id, f"unknown value: {exc}")
    signal = _SIGNALS.get(signal_type)
    if signal is None:
        return SkippedRecord(external_id, f"unsupported signal type {signal_type.value}")
    value = normalise_hash(signal, raw_value)
    if value is None:
        # One bad record must not wedge the feed (the checkpoint could never advance).
        return SkippedRecord(external_id, f"malformed {signal_type.value} hash")
    if status in _REMOVED:
        op: Op = "remove"
    elif status in _LIVE:
        op = "add"
    else:
        return SkippedRecord(
            external_id, f"hash status {status.value} is neither live nor withdrawn"
        )
    return HashUpdate(
        signal=signal,
        value=value,
        external_id=f"{signal_type.value}:{value}",
        op=op,
        metadata=_metadata(record, status),
    )


def _metadata(record: dict[str, Any], status: StopNCIICaseStatus) -> dict[str, str]:
    metadata = {"status": status.value, "last_modified": str(record.get("lastModtimestamp", ""))}
    cases = record.get("caseNumbers")
    if isinstance(cases, dict) and cases:
        metadata["case_numbers"] = ",".join(sorted(str(c) for c in cases))
    feedbacks = record.get("CSPFeedbacks")
    if isinstance(feedbacks, list):
        opinions: set[str] = set()
        tags: set[str] = set()
        for feedback in feedbacks:
            if isinstance(feedback, dict):
                opinions.add(f"{feedback.get('source', '')}={feedback.get('feedbackValue', '')}")
                tags.update(str(tag) for tag in feedback.get("tags") or ())
        if opinions:
            metadata["csp_feedback"] = ",".join(sorted(opinions))
        if tags:
            metadata["tags"] = ",".join(sorted(tags))
    regions = record.get("hashRegions")
    if isinstance(regions, list) and regions:
        metadata["regions"] = ",".join(sorted(str(r) for r in regions))
    return metadata


def _checkpoint(start: int, token: str | None) -> str:
    return json.dumps({"v": 1, "start_timestamp": start, "page_token": token})


def _parse_checkpoint(checkpoint: str | None) -> tuple[int, str | None]:
    if checkpoint is None:
        return StopNCIIAPI.DEFAULT_START_TIME, None
    try:
        data = json.loads(checkpoint)
        start, token = data["start_timestamp"], data["page_token"]
        if (
            data.get("v") != 1
            or not isinstance(start, int)
            or not (token is None or isinstance(token, str))
        ):
            raise ValueError(checkpoint)
    except (ValueError, TypeError, KeyError):
        raise ExchangeError(
            "checkpoint is not one this client wrote", exchange=_NAME, kind="checkpoint"
        ) from None
    return start, token
