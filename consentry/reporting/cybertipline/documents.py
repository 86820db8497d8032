"""The XML documents the CyberTipline Reporting API takes: ``<report>`` (POST /submit) and
``<fileDetails>`` (POST /fileinfo), built with lxml in the documented element order and
validated against ``schema/cybertipline.xsd`` before they leave. Nothing here puts content
bytes in a document: files travel only in /upload.

The element order (documentation Appendix B and C, cross-checked against an SDK generated from
NCMEC's XSD; see docs/cybertipline.md for sources). Only the elements Consentry writes are
listed; NCMEC's sequences hold others in between::

    report: incidentSummary, internetDetails*, reporter, personOrUserReported?, additionalInfo?
    incidentSummary: incidentType, escalateToHighPriority?, incidentDateTime,
                     incidentDateTimeDescription?
    reporter: reportingPerson, contactPerson?, companyTemplate?, termsOfService?, legalURL?
    person: firstName?, lastName?, phone*, email*
    personOrUserReported: personOrUserReportedPerson?, espIdentifier?, espService?,
                          screenName?, displayName*, profileUrl*, ipCaptureEvent*,
                          accountTemporarilyDisabled?, accountPermanentlyDisabled?,
                          additionalInfo?
    ipCaptureEvent: ipAddress, eventName?, dateTime?, possibleProxy?, port?
    fileDetails: reportId (a number), fileId, originalFileName?, uploadedToEspTimestamp?,
                 locationOfFile?, fileViewedByEsp?, exifViewedByEsp?, publiclyAvailable?,
                 fileRelevance?, fileAnnotations?, industryClassification?,
                 originalFileHash*, ipCaptureEvent?, additionalInfo*
    fileAnnotations: animeDrawingVirtualHentai?, potentialMeme?, viral?,
                     possibleSelfProduction?, physicalHarm?, violenceGore?, bestiality?,
                     liveStreaming?, infant?, generativeAi? -- each a boolean
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib import resources

from lxml import etree

from consentry.errors import InvalidRequest
from consentry.reporting.cybertipline.model import (
    CyberTipReport,
    FileAnnotation,
    IpCapture,
    ReportedFile,
    ReportingPerson,
)

XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"
# What the hashes are called in originalFileHash/@hashType (free text in the documentation).
HASH_TYPE_MD5 = "MD5"
HASH_TYPE_SHA256 = "SHA256"


@cache
def schema() -> etree.XMLSchema:
    """The element-order schema, loaded once from the package."""
    source = resources.files("consentry.reporting.cybertipline").joinpath(
        "schema/cybertipline.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source))


def validate(document: bytes, root: str) -> etree._Element:
    """Parse ``document`` and check it against the schema with ``root`` as its root element;
    raise ``InvalidRequest`` naming the first problem (line and message)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        tree = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidRequest("malformed_xml", f"not well-formed XML: {exc}",
                             field=root) from None
    if tree.getroottree().docinfo.internalDTD is not None or b"<!DOCTYPE" in document:
        # Entities are never expanded; a document that declares any is not one of ours.
        raise InvalidRequest("doctype_refused", "a CyberTipline document may not carry a "
                             "DOCTYPE", field=root)
    if tree.tag != root:
        raise InvalidRequest("wrong_document", f"expected a <{root}> document, got "
                             f"<{tree.tag}>", field=root)
    try:
        schema().assertValid(tree)
    except (etree.DocumentInvalid, etree.XMLSchemaValidateError) as exc:
        raise InvalidRequest("schema_violation", f"<{root}> does not match the CyberTipline "
                             f"schema: {exc}", field=root) from None
    return tree


def build_report(report: CyberTipReport, *, now: datetime | None = None) -> bytes:
    """The ``<report>`` document for POST /submit, validated. Carries no file bytes. An
    incident time in the future is refused (NCMEC rejects it)."""
    if report.incident.at > (now or datetime.now(UTC)):
        raise InvalidRequest("future_incident", "incident.at is in the future; NCMEC refuses "
                             "an incidentDateTime after the report", field="incident.at")
    root = _root("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", report.incident.type.value)
    _opt(summary, "escalateToHighPriority", report.incident.escalate_to_high_priority)
    _sub(summary, "incidentDateTime", _when(report.incident.at))
    _opt(summary, "incidentDateTimeDescription", report.incident.description)

    for incident in report.internet_details:
        page = _sub(_sub(root, "internetDetails"), "webPageIncident")
        _opt(page, "url", incident.url)
        _opt(page, "additionalInfo", incident.additional_info)

    reporter = _sub(root, "reporter")
    _person(_sub(reporter, "reportingPerson"), report.reporter.person)
    if report.reporter.contact is not None:
        _person(_sub(reporter, "contactPerson"), report.reporter.contact)
    _opt(reporter, "companyTemplate", report.reporter.company_template)
    _opt(reporter, "termsOfService", report.reporter.terms_of_service)
    _opt(reporter, "legalURL", report.reporter.legal_url)

    user = report.reported_user
    reported = _sub(root, "personOrUserReported")
    if user.email:
        person = _sub(reported, "personOrUserReportedPerson")
        for email in user.email:
            element = _sub(person, "email", email.address)
            if email.type is not None:
                element.set("type", email.type.value)
            if email.verified is not None:
                element.set("verified", _bool(email.verified))
    _sub(reported, "espIdentifier", user.esp_identifier)
    _opt(reported, "espService", user.esp_service)
    _opt(reported, "screenName", user.screen_name)
    _opt(reported, "displayName", user.display_name)
    _opt(reported, "profileUrl", user.profile_url)
    for capture in user.ip_captures:
        _ip_capture(_sub(reported, "ipCaptureEvent"), capture)
    if user.account_temporarily_disabled is not None:
        _sub(reported, "accountTemporarilyDisabled", _bool(user.account_temporarily_disabled))
    if user.account_permanently_disabled is not None:
        _sub(reported, "accountPermanentlyDisabled", _bool(user.account_permanently_disabled))
    # The schema has no element for a user agent; NCMEC reads additionalInfo.
    if user.user_agent is not None:
        _sub(reported, "additionalInfo", f"User agent: {user.user_agent}")

    _opt(root, "additionalInfo", report.additional_info)
    return _finish(root, "report")


def build_file_details(report_id: str, file_id: str, file: ReportedFile) -> bytes:
    """The ``<fileDetails>`` document for POST /fileinfo of one uploaded file, validated.
    ``report_id`` is NCMEC's (numeric) report id."""
    root = _root("fileDetails")
    _sub(root, "reportId", report_id)
    _sub(root, "fileId", file_id)
    _sub(root, "originalFileName", file.file_name)
    if file.uploaded_at is not None:
        _sub(root, "uploadedToEspTimestamp", _when(file.uploaded_at))
    _opt(root, "locationOfFile", file.location)
    if file.viewed_by_esp is not None:
        _sub(root, "fileViewedByEsp", _bool(file.viewed_by_esp))
    if file.publicly_available is not None:
        _sub(root, "publiclyAvailable", _bool(file.publicly_available))
    _sub(root, "fileRelevance", "Reported")
    if file.annotations:
        annotations = _sub(root, "fileAnnotations")
        for annotation in FileAnnotation:  # schema order, whatever order the set iterates in
            if annotation in file.annotations:
                _sub(annotations, annotation.value, _bool(True))
    if file.industry_classification is not None:
        _sub(root, "industryClassification", file.industry_classification.value)
    _sub(root, "originalFileHash", file.md5).set("hashType", HASH_TYPE_MD5)
    _sub(root, "originalFileHash", file.sha256).set("hashType", HASH_TYPE_SHA256)
    if file.ip_capture is not None:
        _ip_capture(_sub(root, "ipCaptureEvent"), file.ip_capture)
    _opt(root, "additionalInfo", file.additional_info)
    return _finish(root, "fileDetails")


# ---------------------------------------------------------------- helpers


def _root(tag: str) -> etree._Element:
    root = etree.Element(tag, nsmap={"xsi": XSI})
    root.set(f"{{{XSI}}}noNamespaceSchemaLocation", SCHEMA_LOCATION)
    return root


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _opt(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None:
        _sub(parent, tag, text)


def _person(element: etree._Element, person: ReportingPerson) -> None:
    _opt(element, "firstName", person.first_name)
    _opt(element, "lastName", person.last_name)
    _opt(element, "phone", person.phone)
    _sub(element, "email", person.email)


def _ip_capture(element: etree._Element, capture: IpCapture) -> None:
    _sub(element, "ipAddress", capture.ip_address)
    _sub(element, "eventName", capture.event.value)
    if capture.at is not None:
        _sub(element, "dateTime", _when(capture.at))
    if capture.possible_proxy is not None:
        _sub(element, "possibleProxy", _bool(capture.possible_proxy))
    if capture.port is not None:
        _sub(element, "port", str(capture.port))


def _when(moment: datetime) -> str:
    """UTC, seconds, with a ``Z``: the form NCMEC's examples use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _finish(root: etree._Element, tag: str) -> bytes:
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    try:
        validate(document, tag)
    except InvalidRequest as exc:
        # Every model value is checked on construction, so this is a gap between the model
        # and the schema: say so rather than send NCMEC a document it will refuse.
        raise InvalidRequest(exc.code, f"refusing to build an invalid <{tag}>: {exc}",
                             field=exc.field) from None
    return document
