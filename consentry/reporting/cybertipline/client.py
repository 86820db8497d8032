"""The CyberTipline Reporting API client: submit -> upload (per file) -> fileinfo (per file)
-> finish, and retract, over HTTPS with Basic authentication.

Wire format (documentation, "Endpoints"; see docs/cybertipline.md):

- ``POST /submit``: body one ``<report>``, ``Content-Type: text/xml; charset=utf-8``;
  answer ``<reportResponse>`` with ``reportId``.
- ``POST /upload``: ``multipart/form-data`` with ``id`` (the report id) and ``file``; answer
  ``<reportResponse>`` with ``fileId`` and ``hash`` (MD5 of the bytes NCMEC received).
- ``POST /fileinfo``: body one ``<fileDetails>``; answer ``<reportResponse>``.
- ``POST /finish``: form field ``id`` (multipart, like the documentation's curl examples);
  answer ``<reportDoneResponse>`` (reportId, files).
- ``POST /retract``: form field ``id``; only a report that is not finished.
- ``GET /status``: checks that the client can connect and authenticate.

Retries: a call that fails with HTTP 5xx or 429, NCMEC code 1xxx, or a connection failure is
tried again with exponential backoff (``Retry-After`` honoured, capped). A call whose answer
was lost after it was sent is retried too, except /upload, where a repeat could put the same
file in the report twice: there the report is retracted and the submission starts over.

Never logged: the credentials (they live only in the ``httpx.BasicAuth`` of one client), file
bytes, and the XML documents (they name the reported user). Logged: step, report key,
report id, file key, response code.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import httpx
from lxml import etree

from consentry.errors import ConfigurationError, Conflict, InvalidRequest
from consentry.reporting.cybertipline.documents import build_file_details, build_report
from consentry.reporting.cybertipline.errors import (
    SUCCESS,
    CyberTiplineCredentialsRefused,
    CyberTiplineError,
    CyberTiplineRejected,
    CyberTiplineUnavailable,
    ReportAlreadyFinished,
    ReportAlreadyRetracted,
    ReportNotFound,
    error_for,
)
from consentry.reporting.cybertipline.model import CyberTipReport, ReportedFile
from consentry.reporting.cybertipline.progress import SubmissionProgress

log = logging.getLogger(__name__)

PRODUCTION_URL: Final = "https://report.cybertip.org/ispws"
TEST_URL: Final = "https://exttest.cybertip.org/ispws"
XML_CONTENT_TYPE: Final = "text/xml; charset=utf-8"
MAX_RESPONSE_BYTES: Final = 1 << 20  # answers are small acknowledgements
# How many times one submission may start over with a fresh report (a lost upload answer,
# or NCMEC deleting an unfinished report) before giving up.
MAX_RESTARTS: Final = 2


@dataclass(frozen=True)
class CyberTiplineSettings:
    """Where and as whom to report. The caller reads these from configuration; the password
    is kept out of ``repr``. ``base_url`` must be HTTPS except on a loopback address (tests)."""

    base_url: str
    username: str
    password: str = field(repr=False)
    timeout_s: float = 60.0
    max_attempts: int = 5
    first_backoff_s: float = 1.0
    longest_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"the CyberTipline URL must be an https URL such as "
                                     f"{TEST_URL}, got {self.base_url!r}")
        if parts.scheme == "http" and not loopback_host(parts.hostname):
            raise ConfigurationError("the CyberTipline URL must use https: credentials and "
                                     "reports never travel in the clear")
        if not self.username or not self.password:
            raise ConfigurationError("the CyberTipline username and password are required "
                                     "(issued by NCMEC)")
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.first_backoff_s < 0:
            raise ConfigurationError("CyberTipline timeout must be positive and attempts at "
                                     "least 1")


@dataclass(frozen=True)
class NcmecAnswer:
    """A parsed ``<reportResponse>`` or ``<reportDoneResponse>``."""

    response_code: int
    description: str
    report_id: str | None = None
    file_id: str | None = None
    md5: str | None = None
    file_ids: tuple[str, ...] = ()


class _LostAnswer(Exception):
    """An /upload reached NCMEC, or may have, and its answer was lost."""


class CyberTipline:
    """Sends reports. One instance per configured account; safe to reuse for many reports,
    not shared between threads."""

    def __init__(self, settings: CyberTiplineSettings, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._base = settings.base_url.rstrip("/")
        self._http = httpx.Client(
            auth=httpx.BasicAuth(settings.username, settings.password),
            timeout=settings.timeout_s, follow_redirects=False)

    # ------------------------------------------------------------ public

    def status(self) -> NcmecAnswer:
        """GET /status: the server is reachable and accepts the credentials."""
        return self._call("status", "GET", "/status", retry_lost=True)

    def send(self, report: CyberTipReport, files: Mapping[str, bytes],
             progress: SubmissionProgress | None = None,
             on_progress: Callable[[SubmissionProgress], None] | None = None,
             ) -> SubmissionProgress:
        """Send ``report`` with the bytes of its files (``files[file.key]``), resuming from
        ``progress`` (the last value handed to ``on_progress``; None for a new report).

        ``on_progress`` is called with every new progress value, before the next call to
        NCMEC: persist it (if it raises, sending stops there, and the persisted value resumes
        it). Returns the final progress (``finished``). A finished report is never sent
        again. Everything is checked before the first call: the XML, every file's presence
        and hashes."""
        current = progress or SubmissionProgress(report.key)
        if current.report_key != report.key:
            raise InvalidRequest("progress_mismatch", f"the progress given is for report "
                                 f"{current.report_key!r}, not {report.key!r}",
                                 field="progress")
        if current.retracted:
            raise Conflict(f"report {report.key!r} was retracted; draft a new report (with a "
                           "new key) to report again", code="report_retracted")
        if current.finished:
            return current
        build_report(report)  # refuse an invalid report before anything is sent

        def save(new: SubmissionProgress) -> SubmissionProgress:
            if on_progress is not None:
                on_progress(new)
            return new

        for _ in range(MAX_RESTARTS + 1):
            try:
                return self._send_once(report, files, current, save)
            except _LostAnswer:
                current = save(self._abandon(self._latest, retract=True))
            except ReportNotFound as exc:
                # NCMEC deleted the unfinished report (24 h after opening / 1 h after the
                # last change): it cannot become a tip, so start over with a new one.
                log.warning("cybertipline: report %s (key %s) is gone at NCMEC (%s); "
                            "starting over", self._latest.report_id, report.key,
                            exc.response_code)
                current = save(self._abandon(self._latest, retract=False))
        raise CyberTiplineUnavailable(
            f"report {report.key!r} had to start over {MAX_RESTARTS} times; try again later",
            step="send")

    def retract(self, progress: SubmissionProgress,
                on_progress: Callable[[SubmissionProgress], None] | None = None,
                ) -> SubmissionProgress:
        """POST /retract: withdraw a report that is not finished. A finished report cannot
        be retracted (``ReportAlreadyFinished``). Retracting twice is harmless."""
        if progress.retracted:
            return progress
        if progress.finished:
            raise ReportAlreadyFinished(f"report {progress.report_id} is finished and can no "
                                        "longer be retracted", step="retract",
                                        response_code=5102)
        if progress.report_id is not None:
            # Already withdrawn, or deleted unfinished: either is the outcome asked for.
            with contextlib.suppress(ReportAlreadyRetracted, ReportNotFound):
                self._call("retract", "POST", "/retract",
                           files={"id": (None, progress.report_id)}, retry_lost=True,
                           report_key=progress.report_key)
        done = replace(progress, retracted=True, submitting=False, uploading=None)
        if on_progress is not None:
            on_progress(done)
        return done

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CyberTipline:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------ the flow

    _latest: SubmissionProgress

    def _send_once(self, report: CyberTipReport, files: Mapping[str, bytes],
                   current: SubmissionProgress,
                   save: Callable[[SubmissionProgress], SubmissionProgress],
                   ) -> SubmissionProgress:
        self._latest = current
        self._check_files(report, files, current)
        if current.report_id is not None and current.uploading is not None:
            # A previous run sent an /upload and died before recording its answer: the
            # report may hold that file already, under an id we do not know.
            raise _LostAnswer
        if current.report_id is None:
            current = self._latest = save(replace(current, submitting=True))
            answer = self._call("submit", "POST", "/submit", content=build_report(report),
                                headers={"Content-Type": XML_CONTENT_TYPE}, retry_lost=True,
                                report_key=report.key)
            if not answer.report_id:
                raise CyberTiplineRejected("NCMEC accepted the report without a report id",
                                           step="submit", response_code=answer.response_code)
            current = self._latest = save(replace(current, report_id=answer.report_id,
                                                  submitting=False))
        report_id = current.report_id
        assert report_id is not None

        for file in report.files:
            file_id = current.file_id(file.key)
            if file_id is None:
                current = self._latest = save(replace(current, uploading=file.key))
                file_id = self._upload(report.key, report_id, file, files[file.key])
                current = self._latest = save(current.with_upload(file.key, file_id))
            if file.key not in current.described:
                self._call("fileinfo", "POST", "/fileinfo",
                           content=build_file_details(report_id, file_id, file),
                           headers={"Content-Type": XML_CONTENT_TYPE}, retry_lost=True,
                           report_key=report.key, file_key=file.key)
                current = self._latest = save(current.with_described(file.key))

        # 5102 on a repeated finish: the one whose answer was lost did finish it.
        with contextlib.suppress(ReportAlreadyFinished):
            self._call("finish", "POST", "/finish", files={"id": (None, report_id)},
                       retry_lost=True, report_key=report.key)
        current = self._latest = save(replace(current, finished=True))
        log.info("cybertipline: report key %s finished as NCMEC report %s with %d file(s)",
                 report.key, report_id, len(report.files))
        return current

    def _upload(self, report_key: str, report_id: str, file: ReportedFile, data: bytes) -> str:
        answer = self._call("upload", "POST", "/upload", data={"id": report_id},
                            files={"file": (file.file_name, data, file.media_type)},
                            retry_lost=False, report_key=report_key, file_key=file.key)
        if not answer.file_id:
            raise CyberTiplineRejected("NCMEC accepted an upload without a file id",
                                       step="upload", response_code=answer.response_code)
        if answer.md5 is not None and answer.md5.lower() != file.md5:
            # NCMEC holds bytes other than ours; leave ``uploading`` set so the next run
            # retracts this report and starts over.
            raise CyberTiplineUnavailable(f"NCMEC received different bytes for file "
                                          f"{file.key!r} (MD5 mismatch)", step="upload")
        return answer.file_id

    def _abandon(self, progress: SubmissionProgress, *, retract: bool) -> SubmissionProgress:
        if retract and progress.report_id is not None:
            log.warning("cybertipline: retracting report %s (key %s): an upload's answer was "
                        "lost; starting over", progress.report_id, progress.report_key)
            with contextlib.suppress(ReportAlreadyRetracted, ReportNotFound):
                self._call("retract", "POST", "/retract",
                           files={"id": (None, progress.report_id)}, retry_lost=True,
                           report_key=progress.report_key)
        return progress.restarted()

    @staticmethod
    def _check_files(report: CyberTipReport, files: Mapping[str, bytes],
                     progress: SubmissionProgress) -> None:
        for file in report.files:
            if progress.file_id(file.key) is not None:
                continue  # already at NCMEC: its bytes are not needed again
            data = files.get(file.key)
            if data is None:
                raise InvalidRequest("missing_file", f"no bytes given for file {file.key!r}",
                                     field="files")
            if (hashlib.sha256(data).hexdigest() != file.sha256
                    or hashlib.md5(data, usedforsecurity=False).hexdigest() != file.md5):
                raise InvalidRequest("hash_mismatch", f"the bytes given for file "
                                     f"{file.key!r} do not match its recorded hashes",
                                     field="files")

    # ------------------------------------------------------------ one call, with retries

    def _call(self, step: str, method: str, path: str, *, retry_lost: bool,
              report_key: str | None = None, file_key: str | None = None,
              content: bytes | None = None, headers: dict[str, str] | None = None,
              data: dict[str, str] | None = None,
              files: dict[str, tuple[str | None, bytes | str] | tuple[str, bytes, str]]
              | None = None) -> NcmecAnswer:
        settings = self.settings
        last: CyberTiplineError | None = None
        for attempt in range(1, settings.max_attempts + 1):
            wait: float | None = None
            try:
                response = self._http.request(method, self._base + path, content=content,
                                              headers=headers, data=data, files=files)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached NCMEC: always safe to try again.
                last = CyberTiplineUnavailable(f"NCMEC could not be reached for {step} "
                                               f"({type(exc).__name__})", step=step)
            except httpx.TransportError as exc:
                if not retry_lost:
                    log.warning("cybertipline %s: answer lost (%s), report key %s, file %s",
                                step, type(exc).__name__, report_key, file_key)
                    raise _LostAnswer from None
                last = CyberTiplineUnavailable(f"NCMEC's answer to {step} was lost "
                                               f"({type(exc).__name__})", step=step)
            else:
                try:
                    answer = self._answer(step, response)
                except CyberTiplineError as exc:
                    if not exc.retryable:
                        log.warning("cybertipline %s refused: code %s, HTTP %s, report key "
                                    "%s, file %s", step, exc.response_code, exc.http_status,
                                    report_key, file_key)
                        raise
                    last = exc
                    wait = retry_after(response)
                else:
                    log.info("cybertipline %s: ok, report key %s, report id %s, file %s",
                             step, report_key, answer.report_id, file_key)
                    return answer
            log.warning("cybertipline %s: attempt %d of %d failed (%s), report key %s",
                        step, attempt, settings.max_attempts, last, report_key)
            if attempt < settings.max_attempts:
                backoff = settings.first_backoff_s * 2 ** (attempt - 1)
                self._sleep(min(wait if wait is not None else backoff,
                                settings.longest_backoff_s))
        assert last is not None
        raise last

    @staticmethod
    def _answer(step: str, response: httpx.Response) -> NcmecAnswer:
        status = response.status_code
        answer = _parse(response.content) if len(response.content) <= MAX_RESPONSE_BYTES \
            else None
        if status in (401, 403):
            raise CyberTiplineCredentialsRefused(
                f"NCMEC refused the configured credentials for {step} (HTTP {status})",
                step=step, http_status=status,
                response_code=answer.response_code if answer else None,
                description=answer.description if answer else "")
        if answer is not None and answer.response_code != SUCCESS:
            raise error_for(step, answer.response_code, answer.description, status)
        if status >= 500 or status == 429:
            raise CyberTiplineUnavailable(f"NCMEC answered {step} with HTTP {status}",
                                          step=step, http_status=status)
        if status >= 400 or answer is None:
            raise CyberTiplineRejected(f"NCMEC answered {step} with HTTP {status} and no "
                                       "readable response", step=step, http_status=status)
        return answer


def _parse(body: bytes) -> NcmecAnswer | None:
    """``<reportResponse>``/``<reportDoneResponse>``, or None if the body is not one."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None
    if root.tag not in ("reportResponse", "reportDoneResponse"):
        return None

    def text(path: str) -> str | None:
        found = root.findtext(path)
        return found.strip() or None if found is not None else None

    try:
        code = int(text("responseCode") or "")
    except ValueError:
        return None
    file_ids = tuple((e.text or "").strip() for e in root.iterfind("files/fileId"))
    return NcmecAnswer(response_code=code, description=text("responseDescription") or "",
                       report_id=text("reportId"), file_id=text("fileId"), md5=text("hash"),
                       file_ids=file_ids)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a `Retry-After` header asks to wait (None: no such header in seconds)."""
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def loopback_host(host: str) -> bool:
    """Whether a URL's host is this machine (plain http is allowed there: tests)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
