"""What a CyberTipline report says, as typed values: the incident, who reports it, the one
user it is about, where it happened, and the files. The XML is built from these
(``documents.py``); nothing here knows about HTTP.

Every value is checked when it is made, so a report that exists is one NCMEC's schema accepts
(the builder validates the XML again against the schema as a second line).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from consentry.errors import InvalidRequest

# Limits from the documentation (and the clients that learned them from 4100 answers).
TEXT_MAX = 3000
ESP_IDENTIFIER_MAX = 255
FILE_NAME_MAX = 2056
URL_MAX = 2083

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://\S+$")
_HEX = re.compile(r"^[0-9a-f]+$")
_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


class IncidentType(StrEnum):
    """``incidentSummary/incidentType``: the documented values, verbatim."""

    CHILD_PORNOGRAPHY = "Child Pornography (possession, manufacture, and distribution)"
    CHILD_SEX_TRAFFICKING = "Child Sex Trafficking"
    CHILD_SEX_TOURISM = "Child Sex Tourism"
    CHILD_SEXUAL_MOLESTATION = "Child Sexual Molestation"
    MISLEADING_DOMAIN_NAME = "Misleading Domain Name"
    MISLEADING_WORDS_OR_IMAGES = "Misleading Words or Digital Images on the Internet"
    ONLINE_ENTICEMENT = "Online Enticement of Children for Sexual Acts"
    UNSOLICITED_OBSCENE_MATERIAL = "Unsolicited Obscene Material Sent to a Child"


class IpEvent(StrEnum):
    """``ipCaptureEvent/eventName``."""

    LOGIN = "Login"
    REGISTRATION = "Registration"
    PURCHASE = "Purchase"
    UPLOAD = "Upload"
    OTHER = "Other"
    UNKNOWN = "Unknown"


class FileAnnotation(StrEnum):
    """``fileAnnotations`` children, in schema order; each is written as a boolean element set
    to ``true``. ``GENERATIVE_AI`` marks content made or altered by a generative model -- every
    output Consentry refuses is one."""

    ANIME_DRAWING_VIRTUAL_HENTAI = "animeDrawingVirtualHentai"
    POTENTIAL_MEME = "potentialMeme"
    VIRAL = "viral"
    POSSIBLE_SELF_PRODUCTION = "possibleSelfProduction"
    PHYSICAL_HARM = "physicalHarm"
    VIOLENCE_GORE = "violenceGore"
    BESTIALITY = "bestiality"
    LIVE_STREAMING = "liveStreaming"
    INFANT = "infant"
    GENERATIVE_AI = "generativeAi"


class IndustryClassification(StrEnum):
    """The industry categorisation scheme: A = prepubescent, B = pubescent; 1 = a sex act,
    2 = a lascivious exhibition. Chosen by the reviewer who confirms the report, never guessed."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"


class EmailType(StrEnum):
    """``email/@type``."""

    HOME = "Home"
    WORK = "Work"
    BUSINESS = "Business"
    RECOVERY = "Recovery"


# ---------------------------------------------------------------- checks


def _text(value: str | None, field_name: str, *, limit: int = TEXT_MAX,
          required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidRequest("missing", f"{field_name} is required", field=field_name)
        return
    if not value.strip():
        raise InvalidRequest("blank", f"{field_name} must not be blank", field=field_name)
    if len(value) > limit:
        raise InvalidRequest("too_long", f"{field_name} is {len(value)} characters; NCMEC "
                             f"accepts at most {limit}", field=field_name)


def _url(value: str | None, field_name: str) -> None:
    if value is None:
        return
    if not _URL.match(value) or len(value) > URL_MAX:
        raise InvalidRequest("invalid_url", f"{field_name} must be an http(s) URL without spaces, "
                             f"at most {URL_MAX} characters, got {value[:80]!r}",
                             field=field_name)


def _email(value: str, field_name: str) -> None:
    if not _EMAIL.match(value):
        raise InvalidRequest("invalid_email", f"{field_name} is not an email address: "
                             f"{value[:80]!r}", field=field_name)


def _aware(value: datetime, field_name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest("naive_datetime", f"{field_name} must carry a time zone (UTC "
                             "preferred); a naive time is ambiguous to law enforcement",
                             field=field_name)


def _digest(value: str | None, length: int, field_name: str) -> None:
    if value is None:
        return
    if len(value) != length or not _HEX.match(value):
        raise InvalidRequest("invalid_hash", f"{field_name} must be {length} lower-case hex "
                             "digits", field=field_name)


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Email:
    address: str
    type: EmailType | None = None
    verified: bool | None = None

    def __post_init__(self) -> None:
        _email(self.address, "email")


@dataclass(frozen=True)
class ReportingPerson:
    """The person at the platform NCMEC may contact about the report. ``email`` is required."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        _email(self.email, "reporter.email")
        _text(self.first_name, "reporter.first_name", limit=255)
        _text(self.last_name, "reporter.last_name", limit=255)
        _text(self.phone, "reporter.phone", limit=64)


@dataclass(frozen=True)
class Reporter:
    """``<reporter>``: from configuration, the same on every report of one platform."""

    person: ReportingPerson
    contact: ReportingPerson | None = None
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None

    def __post_init__(self) -> None:
        _text(self.company_template, "reporter.company_template")
        _text(self.terms_of_service, "reporter.terms_of_service")
        _url(self.legal_url, "reporter.legal_url")


@dataclass(frozen=True)
class IpCapture:
    """One IP address of the reported user and what they did from it, when."""

    ip_address: str
    event: IpEvent = IpEvent.UNKNOWN
    at: datetime | None = None
    possible_proxy: bool | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.ip_address)
        except ValueError:
            raise InvalidRequest("invalid_ip", f"not an IP address: {self.ip_address[:60]!r}",
                                 field="ip_address") from None
        if self.at is not None:
            _aware(self.at, "ip_capture.at")
        if self.port is not None and not 0 < self.port < 65536:
            raise InvalidRequest("invalid_port", f"port {self.port} is out of range",
                                 field="ip_capture.port")


@dataclass(frozen=True)
class ReportedUser:
    """``<personOrUserReported>``: the one account a report is about. ``esp_identifier`` is the
    platform's account id; it is what reports are bundled by."""

    esp_identifier: str
    screen_name: str | None = None
    display_name: str | None = None
    profile_url: str | None = None
    email: tuple[Email, ...] = ()
    ip_captures: tuple[IpCapture, ...] = ()
    user_agent: str | None = None
    esp_service: str | None = None
    account_temporarily_disabled: bool | None = None
    account_permanently_disabled: bool | None = None

    def __post_init__(self) -> None:
        _text(self.esp_identifier, "reported_user.esp_identifier", limit=ESP_IDENTIFIER_MAX,
              required=True)
        _text(self.screen_name, "reported_user.screen_name", limit=255)
        _text(self.display_name, "reported_user.display_name", limit=255)
        _url(self.profile_url, "reported_user.profile_url")
        _text(self.user_agent, "reported_user.user_agent", limit=1000)
        _text(self.esp_service, "reported_user.esp_service", limit=255)


@dataclass(frozen=True)
class WebPageIncident:
    """``<internetDetails><webPageIncident>``: where the content was (or would have been) seen."""

    url: str | None = None
    additional_info: str | None = None

    def __post_init__(self) -> None:
        _url(self.url, "internet_details.url")
        _text(self.additional_info, "internet_details.additional_info")
        if self.url is None and self.additional_info is None:
            raise InvalidRequest("empty_incident", "a web page incident needs a URL or a "
                                 "description", field="internet_details")


@dataclass(frozen=True)
class ReportedFile:
    """One file of a report, described by ``<fileDetails>``. ``key`` is the caller's stable id
    for it (the evidence item id): progress records uploads by it, so a resumed report never
    uploads the same file twice. The hashes are of the original bytes; the client checks the
    bytes it is handed against them before uploading. ``ip_capture`` is the one address the
    file was uploaded from: ``<fileDetails>`` holds at most one ``ipCaptureEvent`` (the
    reported user's other addresses belong on ``ReportedUser.ip_captures``)."""

    key: str
    file_name: str
    sha256: str
    md5: str
    annotations: frozenset[FileAnnotation] = frozenset()
    industry_classification: IndustryClassification | None = None
    viewed_by_esp: bool | None = None
    publicly_available: bool | None = None
    uploaded_at: datetime | None = None
    location: str | None = None
    ip_capture: IpCapture | None = None
    additional_info: str | None = None
    media_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise InvalidRequest("invalid_key", "a file key is 1-200 letters, digits or "
                                 f"'_.:-', got {self.key[:60]!r}", field="file.key")
        _text(self.file_name, "file.file_name", limit=FILE_NAME_MAX, required=True)
        _digest(self.sha256, 64, "file.sha256")
        _digest(self.md5, 32, "file.md5")
        if self.uploaded_at is not None:
            _aware(self.uploaded_at, "file.uploaded_at")
        _url(self.location, "file.location")
        _text(self.additional_info, "file.additional_info")
        if self.ip_capture is not None and not isinstance(self.ip_capture, IpCapture):
            raise InvalidRequest("invalid_ip_capture", "file.ip_capture is one IpCapture (the "
                                 "upload address); NCMEC takes a single ipCaptureEvent per file",
                                 field="file.ip_capture")
        unknown = [a for a in self.annotations if not isinstance(a, FileAnnotation)]
        if unknown:
            raise InvalidRequest("invalid_annotation", f"unknown file annotations {unknown!r}; "
                                 f"use {[a.value for a in FileAnnotation]}",
                                 field="file.annotations")
        if self.industry_classification is not None and not isinstance(
                self.industry_classification, IndustryClassification):
            raise InvalidRequest("invalid_classification", "industry_classification must be "
                                 "one of A1, A2, B1, B2", field="file.industry_classification")


@dataclass(frozen=True)
class Incident:
    type: IncidentType
    at: datetime
    description: str | None = None
    escalate_to_high_priority: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, IncidentType):
            raise InvalidRequest("invalid_incident_type", f"unknown incident type "
                                 f"{self.type!r}", field="incident.type")
        _aware(self.at, "incident.at")
        _text(self.description, "incident.description")
        _text(self.escalate_to_high_priority, "incident.escalate_to_high_priority")


@dataclass(frozen=True)
class CyberTipReport:
    """One report to NCMEC: one incident, one reported user, that user's files.

    ``key`` is the caller's idempotency key for the report (e.g. the draft's id): the client
    records progress under it, and a report with the same key is never opened twice."""

    key: str
    incident: Incident
    reporter: Reporter
    reported_user: ReportedUser
    files: tuple[ReportedFile, ...] = ()
    internet_details: tuple[WebPageIncident, ...] = ()
    additional_info: str | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise InvalidRequest("invalid_key", "a report key is 1-200 letters, digits or "
                                 f"'_.:-', got {self.key[:60]!r}", field="report.key")
        keys = [f.key for f in self.files]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise InvalidRequest("duplicate_file", f"files {duplicates} appear more than once "
                                 "in one report", field="report.files")
        _text(self.additional_info, "report.additional_info")


@dataclass(frozen=True)
class FlaggedContent:
    """One refused or escalated item before bundling: who, what, when and where."""

    user: ReportedUser
    file: ReportedFile
    at: datetime
    url: str | None = None

    def __post_init__(self) -> None:
        _aware(self.at, "flagged.at")


@dataclass
class _Bundle:
    user: ReportedUser
    files: list[ReportedFile] = field(default_factory=list)
    first_at: datetime | None = None
    urls: list[str] = field(default_factory=list)
    captures: list[IpCapture] = field(default_factory=list)


def bundle_reports(items: Iterable[FlaggedContent], *, incident_type: IncidentType,
                   reporter: Reporter, key_prefix: str) -> list[CyberTipReport]:
    """Bundle flagged content into one report per reported user (by ``esp_identifier``), in
    the order users first appear: the incident time is the user's earliest item, the files
    keep their order (a file seen twice is sent once), IP captures and URLs are merged without
    repeats. A report's key is ``<key_prefix>:<digest of the esp_identifier>``, so bundling the
    same items again yields the same keys (and the client will not open a report twice)."""
    if not _KEY.match(f"{key_prefix}:x") or len(key_prefix) > 150:
        raise InvalidRequest("invalid_key", "the key prefix is 1-150 letters, digits or '_.:-'",
                             field="key_prefix")
    bundles: dict[str, _Bundle] = {}
    for item in items:
        bundle = bundles.setdefault(item.user.esp_identifier, _Bundle(item.user))
        if all(f.key != item.file.key for f in bundle.files):
            bundle.files.append(item.file)
        if bundle.first_at is None or item.at < bundle.first_at:
            bundle.first_at = item.at
        if item.url is not None and item.url not in bundle.urls:
            bundle.urls.append(item.url)
        for capture in item.user.ip_captures:
            if capture not in bundle.captures:
                bundle.captures.append(capture)
    reports = []
    for esp_identifier, bundle in bundles.items():
        assert bundle.first_at is not None  # every bundle holds at least one item
        user = replace(bundle.user, ip_captures=tuple(bundle.captures))
        reports.append(CyberTipReport(
            key=f"{key_prefix}:{hashlib.sha256(esp_identifier.encode()).hexdigest()[:24]}",
            incident=Incident(type=incident_type, at=bundle.first_at),
            reporter=reporter, reported_user=user, files=tuple(bundle.files),
            internet_details=tuple(WebPageIncident(url=u) for u in bundle.urls)))
    return reports

