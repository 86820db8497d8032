"""NCMEC CyberTipline reports: the ``<report>`` and ``<fileDetails>`` documents and the client
of NCMEC's CyberTipline Reporting API ("ispws"). Database-free: callers draft reports from
their own records, persist ``SubmissionProgress`` and store the NCMEC report id.

Sources for the wire format (docs/cybertipline.md has the detail and the open questions):

- NCMEC, "CyberTipline Reporting API" documentation, https://report.cybertip.org/ispws/documentation
  (same page on https://exttest.cybertip.org/ispws/documentation): environments, Basic
  authentication, the endpoints /status, /xsd, /submit, /upload, /fileinfo, /finish, /retract.
  Its XSD (GET /ispws/xsd) needs NCMEC-issued credentials and was not available offline, so
  ``schema/cybertipline.xsd`` is an element-order schema written from the documentation.
- Element order and response codes, cross-checked in open-source clients (read, not copied):
  ROOST's Coop (github.com/roostorg/coop, ``server/services/ncmecService/ncmecReporting.ts`` and
  ``fieldCoverage.test.ts``, which lists the XSD sequences of incidentSummary,
  personOrUserReported, fileDetails and ipCaptureEvent), and an independent Python client
  whose element-order tables agree with it.

Typical use::

    report = CyberTipReport(key=..., incident=Incident(IncidentType.CHILD_PORNOGRAPHY, at),
                            reporter=reporter, reported_user=user, files=(file,))
    with CyberTipline(CyberTiplineSettings(TEST_URL, username, password)) as tipline:
        progress = tipline.send(report, {file.key: data}, stored_progress, on_progress=store)
    progress.report_id  # NCMEC's report id, once finished
"""

from consentry.reporting.cybertipline.client import (
    PRODUCTION_URL,
    TEST_URL,
    CyberTipline,
    CyberTiplineSettings,
    NcmecAnswer,
)
from consentry.reporting.cybertipline.documents import (
    build_file_details,
    build_report,
    validate,
)
from consentry.reporting.cybertipline.errors import (
    CyberTiplineCredentialsRefused,
    CyberTiplineError,
    CyberTiplineRejected,
    CyberTiplineUnavailable,
    ReportAlreadyFinished,
    ReportAlreadyRetracted,
    ReportNotFound,
)
from consentry.reporting.cybertipline.model import (
    CyberTipReport,
    Email,
    EmailType,
    FileAnnotation,
    FlaggedContent,
    Incident,
    IncidentType,
    IndustryClassification,
    IpCapture,
    IpEvent,
    ReportedFile,
    ReportedUser,
    Reporter,
    ReportingPerson,
    WebPageIncident,
    bundle_reports,
)
from consentry.reporting.cybertipline.progress import SubmissionProgress

__all__ = [
    "PRODUCTION_URL",
    "TEST_URL",
    "CyberTipReport",
    "CyberTipline",
    "CyberTiplineCredentialsRefused",
    "CyberTiplineError",
    "CyberTiplineRejected",
    "CyberTiplineSettings",
    "CyberTiplineUnavailable",
    "Email",
    "EmailType",
    "FileAnnotation",
    "FlaggedContent",
    "Incident",
    "IncidentType",
    "IndustryClassification",
    "IpCapture",
    "IpEvent",
    "NcmecAnswer",
    "ReportAlreadyFinished",
    "ReportAlreadyRetracted",
    "ReportNotFound",
    "ReportedFile",
    "ReportedUser",
    "Reporter",
    "ReportingPerson",
    "SubmissionProgress",
    "WebPageIncident",
    "build_file_details",
    "build_report",
    "bundle_reports",
    "validate",
]
