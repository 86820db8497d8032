"""The CyberTipline report: its documents (element order, schema, refusals), bundling, and
the client against a loopback server speaking NCMEC's wire format."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from ncmec_server import PASSWORD, USERNAME, NcmecServer

from consentry.errors import ConfigurationError, Conflict, InvalidRequest
from consentry.reporting.cybertipline import (
    CyberTipline,
    CyberTiplineCredentialsRefused,
    CyberTiplineRejected,
    CyberTiplineSettings,
    CyberTiplineUnavailable,
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
    ReportAlreadyFinished,
    ReportedFile,
    ReportedUser,
    Reporter,
    ReportingPerson,
    ReportNotFound,
    SubmissionProgress,
    WebPageIncident,
    build_file_details,
    build_report,
    bundle_reports,
    validate,
)
from consentry.reporting.cybertipline.errors import error_for

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
REPORTER = Reporter(ReportingPerson(email="safety@platform.example", first_name="Dana",
                                    last_name="Reyes", phone="+1 555 0100"),
                    company_template="Example Images", legal_url="https://platform.example/legal")


def content(n: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes([n]) * 64


def reported_file(n: int, **overrides: object) -> ReportedFile:
    data = content(n)
    values: dict[str, object] = dict(
        key=f"evidence-{n}", file_name=f"output-{n}.png",
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        annotations=frozenset({FileAnnotation.GENERATIVE_AI}),
        industry_classification=IndustryClassification.A2, viewed_by_esp=True,
        publicly_available=False, uploaded_at=AT, media_type="image/png")
    values.update(overrides)
    return ReportedFile(**values)  # type: ignore[arg-type]


def user(account: str = "acct-42") -> ReportedUser:
    return ReportedUser(
        esp_identifier=account, screen_name="night_painter",
        email=(Email("painter@mail.example", EmailType.HOME, verified=True),),
        ip_captures=(IpCapture("203.0.113.7", IpEvent.UPLOAD, AT, possible_proxy=False),
                     IpCapture("2001:db8::1", IpEvent.LOGIN, AT - timedelta(hours=1))),
        user_agent="Mozilla/5.0 (X11; Linux x86_64)")


def report(key: str = "draft-1", files: int = 2) -> CyberTipReport:
    return CyberTipReport(
        key=key, incident=Incident(IncidentType.CHILD_PORNOGRAPHY, AT),
        reporter=REPORTER, reported_user=user(),
        files=tuple(reported_file(n) for n in range(1, files + 1)),
        internet_details=(WebPageIncident(url="https://platform.example/g/abc"),),
        additional_info="Generation request refused by Consentry (KM-1).")


def file_bytes(files: int = 2) -> dict[str, bytes]:
    return {f"evidence-{n}": content(n) for n in range(1, files + 1)}


def children(element: etree._Element) -> list[str]:
    return [str(child.tag) for child in element]


# ---------------------------------------------------------------- documents


def test_report_elements_come_in_the_documented_order():
    root = etree.fromstring(build_report(report()))
    assert children(root) == ["incidentSummary", "internetDetails", "reporter",
                              "personOrUserReported", "additionalInfo"]
    assert children(root.find("incidentSummary")) == ["incidentType", "incidentDateTime"]
    assert root.findtext("incidentSummary/incidentType") == (
        "Child Pornography (possession, manufacture, and distribution)")
    assert root.findtext("incidentSummary/incidentDateTime") == "2026-01-02T03:04:05Z"
    assert children(root.find("reporter")) == ["reportingPerson", "companyTemplate", "legalURL"]
    assert children(root.find("reporter/reportingPerson")) == [
        "firstName", "lastName", "phone", "email"]
    reported = root.find("personOrUserReported")
    assert children(reported) == ["personOrUserReportedPerson", "espIdentifier", "screenName",
                                  "ipCaptureEvent", "ipCaptureEvent", "additionalInfo"]
    assert children(reported.find("ipCaptureEvent")) == [
        "ipAddress", "eventName", "dateTime", "possibleProxy"]
    assert reported.findtext("additionalInfo") == "User agent: Mozilla/5.0 (X11; Linux x86_64)"
    email = reported.find("personOrUserReportedPerson/email")
    assert (email.text, email.get("type"), email.get("verified")) == (
        "painter@mail.example", "Home", "true")


def test_file_details_elements_come_in_the_documented_order():
    file = reported_file(1, annotations=frozenset({FileAnnotation.GENERATIVE_AI,
                                                   FileAnnotation.INFANT}),
                         location="https://cdn.platform.example/o/1.png",
                         ip_capture=IpCapture("203.0.113.7", IpEvent.UPLOAD, AT),
                         additional_info="Blocked output of a generation request")
    root = etree.fromstring(build_file_details("4564654", "0000001a", file))
    assert children(root) == [
        "reportId", "fileId", "originalFileName", "uploadedToEspTimestamp", "locationOfFile",
        "fileViewedByEsp", "publiclyAvailable", "fileRelevance", "fileAnnotations",
        "industryClassification", "originalFileHash", "originalFileHash", "ipCaptureEvent",
        "additionalInfo"]
    # Annotations in schema order, whatever order the set iterates in.
    assert children(root.find("fileAnnotations")) == ["infant", "generativeAi"]
    # Annotations are boolean elements in NCMEC's schema, not empty flags.
    assert [a.text for a in root.find("fileAnnotations")] == ["true", "true"]
    assert root.findtext("industryClassification") == "A2"
    hashes = {h.get("hashType"): h.text for h in root.findall("originalFileHash")}
    assert hashes == {"MD5": file.md5, "SHA256": file.sha256}
    assert root.findtext("fileViewedByEsp") == "true"
    assert root.findtext("publiclyAvailable") == "false"


def test_documents_carry_no_file_bytes():
    data = content(1)
    assert data not in build_report(report())
    assert data not in build_file_details("1", "f1", reported_file(1))


def test_the_schema_refuses_elements_out_of_order():
    root = etree.fromstring(build_report(report()))
    summary = root.find("incidentSummary")
    summary.insert(0, summary[1])  # incidentDateTime before incidentType
    with pytest.raises(InvalidRequest, match="incidentDateTime") as refused:
        validate(etree.tostring(root), "report")
    assert refused.value.code == "schema_violation"

    details = etree.fromstring(build_file_details("1", "f1", reported_file(1)))
    details.append(details.find("industryClassification"))  # moved to the end
    with pytest.raises(InvalidRequest, match="industryClassification"):
        validate(etree.tostring(details), "fileDetails")


def test_the_schema_refuses_unknown_values_and_malformed_documents():
    document = build_file_details("1", "f1", reported_file(1)).replace(b">A2<", b">C3<")
    with pytest.raises(InvalidRequest, match="industryClassification"):
        validate(document, "fileDetails")
    with pytest.raises(InvalidRequest, match="well-formed"):
        validate(b"<report><incidentSummary>", "report")
    with pytest.raises(InvalidRequest, match="expected a <report>"):
        validate(build_file_details("1", "f1", reported_file(1)), "report")
    entity = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
              b"<report>&x;</report>")
    with pytest.raises(InvalidRequest):
        validate(entity, "report")


def full_file_details() -> etree._Element:
    """A ``<fileDetails>`` carrying every element and annotation the builder can write."""
    file = reported_file(1, annotations=frozenset(FileAnnotation),
                         location="https://cdn.platform.example/o/1.png",
                         ip_capture=IpCapture("203.0.113.7", IpEvent.UPLOAD, AT,
                                              possible_proxy=False, port=443),
                         additional_info="Blocked output of a generation request")
    return etree.fromstring(build_file_details("4564654", "0000001a", file))


# The <fileDetails> order as cross-checked against Boostport/ncmec-go cybertipline/types.go
# (generated from NCMEC's XSD), restricted to the elements Consentry writes.
FILE_DETAILS_ORDER = [
    "reportId", "fileId", "originalFileName", "uploadedToEspTimestamp", "locationOfFile",
    "fileViewedByEsp", "publiclyAvailable", "fileRelevance", "fileAnnotations",
    "industryClassification", "originalFileHash", "originalFileHash", "ipCaptureEvent",
    "additionalInfo"]


def test_a_full_file_details_validates_in_the_cross_checked_order():
    root = full_file_details()
    assert children(root) == FILE_DETAILS_ORDER
    assert children(root.find("fileAnnotations")) == [a.value for a in FileAnnotation]
    assert children(root.find("fileAnnotations")) == [
        "animeDrawingVirtualHentai", "potentialMeme", "viral", "possibleSelfProduction",
        "physicalHarm", "violenceGore", "bestiality", "liveStreaming", "infant",
        "generativeAi"]
    assert children(root.find("ipCaptureEvent")) == [
        "ipAddress", "eventName", "dateTime", "possibleProxy", "port"]
    validate(etree.tostring(root), "fileDetails")


@pytest.mark.parametrize("index", [i for i in range(len(FILE_DETAILS_ORDER) - 1)
                                   if FILE_DETAILS_ORDER[i] != FILE_DETAILS_ORDER[i + 1]])
def test_file_details_out_of_order_is_refused(index):
    root = full_file_details()
    root.insert(index, root[index + 1])  # swap two neighbours
    with pytest.raises(InvalidRequest) as refused:
        validate(etree.tostring(root), "fileDetails")
    assert refused.value.code == "schema_violation"


def test_file_annotations_out_of_order_are_refused():
    root = full_file_details()
    annotations = root.find("fileAnnotations")
    annotations.append(annotations[0])  # animeDrawingVirtualHentai moved after generativeAi
    with pytest.raises(InvalidRequest, match="animeDrawingVirtualHentai"):
        validate(etree.tostring(root), "fileDetails")


def test_file_details_shapes_ncmec_refuses_are_refused_here():
    # An annotation written as an empty flag is not a boolean.
    root = full_file_details()
    root.find("fileAnnotations/generativeAi").text = None
    with pytest.raises(InvalidRequest, match="generativeAi"):
        validate(etree.tostring(root), "fileDetails")
    # One upload ipCaptureEvent per file.
    root = full_file_details()
    capture = root.find("ipCaptureEvent")
    capture.addnext(etree.fromstring(etree.tostring(capture)))
    with pytest.raises(InvalidRequest, match="ipCaptureEvent"):
        validate(etree.tostring(root), "fileDetails")
    # NCMEC's report ids are numbers.
    with pytest.raises(InvalidRequest, match="reportId"):
        build_file_details("R-1", "f1", reported_file(1))
    # hashType is required.
    root = full_file_details()
    del root.find("originalFileHash").attrib["hashType"]
    with pytest.raises(InvalidRequest, match="hashType"):
        validate(etree.tostring(root), "fileDetails")


def test_a_recovery_email_and_several_urls_per_web_page_are_accepted():
    recovery = replace(user(), email=(Email("back@mail.example", EmailType.RECOVERY),))
    root = etree.fromstring(build_report(replace(report(), reported_user=recovery)))
    assert root.find("personOrUserReported/personOrUserReportedPerson/email").get(
        "type") == "Recovery"
    page = root.find("internetDetails/webPageIncident")
    page.insert(1, etree.fromstring(etree.tostring(page.find("url"))))
    validate(etree.tostring(root), "report")


@pytest.mark.parametrize(("make", "field", "words"), [
    (lambda: Incident(IncidentType.CHILD_PORNOGRAPHY, datetime(2026, 1, 1)),
     "incident.at", "time zone"),
    (lambda: Incident("Something else", AT), "incident.type", "unknown incident type"),  # type: ignore[arg-type]
    (lambda: ReportingPerson(email="not an address"), "reporter.email", "not an email"),
    (lambda: ReportedUser(esp_identifier="  "), "reported_user.esp_identifier", "blank"),
    (lambda: ReportedUser(esp_identifier="x" * 256), "reported_user.esp_identifier",
     "at most 255"),
    (lambda: IpCapture("999.1.1.1"), "ip_address", "not an IP address"),
    (lambda: WebPageIncident(url="https://example.com/a b"), "internet_details.url",
     "without spaces"),
    (lambda: reported_file(1, md5="abc"), "file.md5", "32 lower-case hex"),
    (lambda: reported_file(1, sha256="Z" * 64), "file.sha256", "64 lower-case hex"),
    (lambda: reported_file(1, industry_classification="C3"), "file.industry_classification",
     "A1, A2, B1, B2"),
    (lambda: reported_file(1, annotations=frozenset({"nsfw"})), "file.annotations",
     "unknown file annotations"),
    (lambda: reported_file(1, key="has space"), "file.key", "file key"),
    (lambda: reported_file(1, ip_capture=(IpCapture("203.0.113.7"),)), "file.ip_capture",
     "single ipCaptureEvent"),
    (lambda: replace(report(), files=(reported_file(1), reported_file(1))), "report.files",
     "more than once"),
])
def test_invalid_input_is_refused_with_a_clear_message(make, field, words):
    with pytest.raises(InvalidRequest, match=words) as refused:
        make()
    assert refused.value.field == field


def test_an_incident_in_the_future_is_refused():
    future = replace(report(), incident=Incident(IncidentType.CHILD_PORNOGRAPHY,
                                                 datetime.now(UTC) + timedelta(hours=1)))
    with pytest.raises(InvalidRequest, match="in the future"):
        build_report(future)


# ---------------------------------------------------------------- bundling


def test_one_users_files_are_bundled_into_one_report():
    other = ReportedUser(esp_identifier="acct-7",
                         ip_captures=(IpCapture("198.51.100.9", IpEvent.LOGIN, AT),))
    a, b = user(), replace(user(), ip_captures=(IpCapture("192.0.2.44", IpEvent.UPLOAD, AT),))
    items = [
        FlaggedContent(a, reported_file(1), AT + timedelta(minutes=5), "https://p.example/1"),
        FlaggedContent(other, reported_file(2), AT),
        FlaggedContent(b, reported_file(3), AT, "https://p.example/3"),
        FlaggedContent(a, reported_file(1), AT + timedelta(minutes=9), "https://p.example/1"),
    ]
    reports = bundle_reports(items, incident_type=IncidentType.CHILD_PORNOGRAPHY,
                             reporter=REPORTER, key_prefix="km1-batch")
    assert [r.reported_user.esp_identifier for r in reports] == ["acct-42", "acct-7"]
    first = reports[0]
    assert [f.key for f in first.files] == ["evidence-1", "evidence-3"]  # no repeat
    assert first.incident.at == AT  # the earliest item
    assert [d.url for d in first.internet_details] == ["https://p.example/1",
                                                       "https://p.example/3"]
    assert [c.ip_address for c in first.reported_user.ip_captures] == [
        "203.0.113.7", "2001:db8::1", "192.0.2.44"]
    assert [f.key for f in reports[1].files] == ["evidence-2"]
    # The same items bundle to the same keys: a report is never opened twice.
    again = bundle_reports(items, incident_type=IncidentType.CHILD_PORNOGRAPHY,
                           reporter=REPORTER, key_prefix="km1-batch")
    assert [r.key for r in again] == [r.key for r in reports]
    assert reports[0].key != reports[1].key
    for r in reports:
        etree.fromstring(build_report(r))  # each validates


# ---------------------------------------------------------------- the client


@pytest.fixture
def ncmec():
    server = NcmecServer()
    yield server
    server.close()


def settings(server: NcmecServer, **overrides: object) -> CyberTiplineSettings:
    values: dict[str, object] = dict(base_url=server.url, username=USERNAME, password=PASSWORD,
                                     timeout_s=5.0, max_attempts=4, first_backoff_s=0.0)
    values.update(overrides)
    return CyberTiplineSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def tipline(ncmec):
    client = CyberTipline(settings(ncmec))
    yield client
    client.close()


def test_a_report_is_sent_submit_upload_fileinfo_finish_in_order(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    progress = tipline.send(report(), file_bytes(), on_progress=saved.append)

    assert progress.finished and progress.report_id is not None
    assert ncmec.endpoints() == ["submit", "upload", "fileinfo", "upload", "fileinfo",
                                 "finish"]
    assert ncmec.endpoints(progress.report_id) == ncmec.endpoints()
    received = ncmec.reports[progress.report_id]
    assert received.finished and not received.retracted
    validate(received.xml, "report")
    assert [f.data for f in received.files] == [content(1), content(2)]
    assert [f.file_name for f in received.files] == ["output-1.png", "output-2.png"]
    for file in received.files:
        details = validate(file.details, "fileDetails")
        assert details.findtext("reportId") == progress.report_id
        assert details.findtext("fileId") == file.file_id
        assert details.findtext("fileAnnotations/generativeAi") == "true"
    assert dict(progress.uploaded) == {"evidence-1": received.files[0].file_id,
                                       "evidence-2": received.files[1].file_id}
    # Progress was handed over after every step, the last one finished.
    assert saved[-1] == progress and len(saved) >= 6
    assert SubmissionProgress.from_json(progress.to_json()) == progress


def test_a_finished_report_is_not_sent_again(ncmec, tipline):
    progress = tipline.send(report(), file_bytes())
    calls = len(ncmec.calls)
    assert tipline.send(report(), file_bytes(), progress) == progress
    assert len(ncmec.calls) == calls


def test_server_errors_are_retried_with_backoff(ncmec):
    waits: list[float] = []
    client = CyberTipline(settings(ncmec, first_backoff_s=0.5, longest_backoff_s=1.5),
                          sleep=waits.append)
    ncmec.fail_next = 3
    progress = client.send(report(files=1), file_bytes(1))
    client.close()
    assert progress.finished
    assert waits == [0.5, 1.0, 1.5]  # doubling, capped
    assert len(ncmec.reports) == 1
    assert ncmec.endpoints() == ["submit", "upload", "fileinfo", "finish"]


def test_retries_run_out_as_unavailable_and_the_progress_resumes(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    tipline.send(report(key="r-ok"), file_bytes())  # a working connection first
    ncmec.calls.clear()
    ncmec.fail_next = 4  # every attempt of the submit
    with pytest.raises(CyberTiplineUnavailable) as down:
        tipline.send(report(), file_bytes(), on_progress=saved.append)
    assert down.value.retryable and down.value.step == "submit"
    assert ncmec.endpoints() == []
    progress = tipline.send(report(), file_bytes(), saved[-1])
    assert progress.finished
    assert len(ncmec.finished_reports()) == 2


class Crash(Exception):
    pass


def crash_after(steps: int, saved: list[SubmissionProgress]):
    def on_progress(progress: SubmissionProgress) -> None:
        saved.append(progress)
        if len(saved) == steps:
            raise Crash
    return on_progress


@pytest.mark.parametrize("steps", range(1, 9))
def test_a_crash_between_steps_resumes_without_a_second_report_or_file(ncmec, tipline, steps):
    saved: list[SubmissionProgress] = []
    with pytest.raises(Crash):
        tipline.send(report(), file_bytes(), on_progress=crash_after(steps, saved))
    # The process died; a new one reads the last persisted progress.
    recorded = SubmissionProgress.from_json(saved[-1].to_json())
    fresh = CyberTipline(settings(ncmec))
    progress = fresh.send(report(), file_bytes(), recorded)
    fresh.close()

    assert progress.finished
    finished = ncmec.finished_reports()
    assert len(finished) == 1 and finished[0].report_id == progress.report_id
    assert [f.data for f in finished[0].files] == [content(1), content(2)]
    assert all(f.details is not None for f in finished[0].files)
    # Any other report opened on the way was never finished and was retracted.
    for other in ncmec.reports.values():
        assert other is finished[0] or (other.retracted and not other.finished)


def test_a_crash_after_submit_was_sent_leaves_at_most_an_unfinished_orphan(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    with pytest.raises(Crash):  # the first save marks "submitting", before the call
        tipline.send(report(), file_bytes(), on_progress=crash_after(1, saved))
    assert saved[-1].submitting and saved[-1].report_id is None
    progress = tipline.send(report(), file_bytes(), saved[-1])
    assert progress.finished and len(ncmec.finished_reports()) == 1


def test_a_lost_upload_answer_retracts_the_report_and_starts_over(ncmec, tipline):
    ncmec.lose_answer_to = {"/upload"}
    progress = tipline.send(report(), file_bytes())
    assert progress.finished
    first, second = ncmec.reports.values()
    assert first.retracted and not first.finished and len(first.files) == 1
    assert second.finished and [f.data for f in second.files] == [content(1), content(2)]
    assert progress.abandoned_report_ids == (first.report_id,)
    assert ncmec.endpoints(first.report_id) == ["submit", "upload", "retract"]
    assert ncmec.endpoints(second.report_id) == ["submit", "upload", "fileinfo", "upload",
                                                 "fileinfo", "finish"]


def test_a_lost_finish_answer_is_not_a_failure(ncmec, tipline):
    ncmec.lose_answer_to = {"/finish"}
    progress = tipline.send(report(), file_bytes())
    assert progress.finished
    assert ncmec.endpoints()[-2:] == ["finish", "finish"]  # the second answered 5102
    assert len(ncmec.reports) == 1


def test_a_report_ncmec_deleted_unfinished_starts_over(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    with pytest.raises(Crash):
        tipline.send(report(), file_bytes(), on_progress=crash_after(4, saved))
    ncmec.expire(saved[-1].report_id)  # more than an hour passed
    progress = tipline.send(report(), file_bytes(), saved[-1])
    assert progress.finished and progress.abandoned_report_ids == (saved[-1].report_id,)
    assert len(ncmec.finished_reports()) == 1


def test_retract_withdraws_an_unfinished_report(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    with pytest.raises(Crash):
        tipline.send(report(), file_bytes(), on_progress=crash_after(3, saved))
    retracted = tipline.retract(saved[-1])
    assert retracted.retracted
    assert ncmec.reports[retracted.report_id].retracted
    assert ncmec.endpoints()[-1] == "retract"
    assert tipline.retract(retracted) == retracted  # twice is harmless
    with pytest.raises(Conflict, match="retracted"):
        tipline.send(report(), file_bytes(), retracted)


def test_a_finished_report_cannot_be_retracted(ncmec, tipline):
    progress = tipline.send(report(), file_bytes())
    with pytest.raises(ReportAlreadyFinished):
        tipline.retract(progress)
    # Even when our record missed the finish, NCMEC's 5102 says so.
    with pytest.raises(ReportAlreadyFinished, match="5102"):
        tipline.retract(replace(progress, finished=False))


def test_wrong_credentials_are_refused_without_retrying(ncmec):
    client = CyberTipline(settings(ncmec, password="wrong"))
    with pytest.raises(CyberTiplineCredentialsRefused, match="credentials"):
        client.send(report(), file_bytes())
    client.close()
    assert ncmec.auth_failures == 1 and ncmec.reports == {}


def test_status_checks_connection_and_credentials(ncmec, tipline):
    assert tipline.status().response_code == 0
    assert ncmec.endpoints() == ["status"]


def test_a_stale_record_never_reopens_a_finished_report(ncmec, tipline):
    progress = tipline.send(report(), file_bytes())
    missed_finish = replace(progress, finished=False, described=())
    with pytest.raises(ReportAlreadyFinished, match="5102"):
        tipline.send(report(), file_bytes(), missed_finish)
    assert len(ncmec.reports) == 1


def test_a_report_id_ncmec_does_not_know_starts_over(ncmec, tipline):
    stale = SubmissionProgress("draft-1", report_id="999")
    sent = tipline.send(report(), file_bytes(), stale)
    assert sent.finished and sent.abandoned_report_ids == ("999",)
    assert ncmec.endpoints()[:2] == ["upload", "submit"]  # upload answered 5001


def test_ncmecs_refusal_of_a_document_carries_its_description(ncmec, tipline):
    saved: list[SubmissionProgress] = []
    with pytest.raises(Crash):
        tipline.send(report(), file_bytes(), on_progress=crash_after(2, saved))
    unknown_file = replace(saved[-1], uploaded=(("evidence-1", "deadbeef"),))
    with pytest.raises(CyberTiplineRejected, match="not in report") as refused:
        tipline.send(report(), file_bytes(), unknown_file)
    assert refused.value.response_code == 4100 and refused.value.step == "fileinfo"
    assert "deadbeef" in refused.value.description


def test_response_codes_map_to_domain_errors():
    assert isinstance(error_for("submit", 1000, "Server error"), CyberTiplineUnavailable)
    assert isinstance(error_for("submit", 2000, ""), CyberTiplineCredentialsRefused)
    assert isinstance(error_for("submit", 3100, ""), CyberTiplineCredentialsRefused)
    rejected = error_for("fileinfo", 4100, "cvc-complex-type.2.4.a: Invalid content")
    assert isinstance(rejected, CyberTiplineRejected) and not rejected.retryable
    assert "Invalid content" in str(rejected) and rejected.step == "fileinfo"
    assert isinstance(error_for("upload", 5001, ""), ReportNotFound)
    assert isinstance(error_for("finish", 5102, ""), ReportAlreadyFinished)
    assert error_for("submit", 4100, "x").to_dict()["response_code"] == 4100


def test_bytes_that_do_not_match_their_hashes_are_refused_before_sending(ncmec, tipline):
    with pytest.raises(InvalidRequest, match="do not match"):
        tipline.send(report(), {"evidence-1": content(1), "evidence-2": content(9)})
    with pytest.raises(InvalidRequest, match="no bytes"):
        tipline.send(report(), {"evidence-1": content(1)})
    assert ncmec.calls == []


def test_credentials_and_file_bytes_are_never_logged(ncmec, tipline, caplog):
    caplog.set_level(logging.DEBUG)
    ncmec.fail_next = 1
    ncmec.lose_answer_to = {"/upload"}
    tipline.send(report(), file_bytes())
    with pytest.raises(CyberTiplineCredentialsRefused):
        CyberTipline(settings(ncmec, password="hunter2-wrong")).status()
    text = caplog.text
    assert "cybertipline" in text
    for secret in (PASSWORD, "hunter2-wrong", "painter@mail.example", "night_painter"):
        assert secret not in text
    assert content(1).decode("latin-1") not in text
    assert PASSWORD not in repr(settings(ncmec))


def test_settings_refuse_plain_http_and_missing_credentials():
    with pytest.raises(ConfigurationError, match="https"):
        CyberTiplineSettings("http://report.cybertip.example/ispws", "u", "p")
    with pytest.raises(ConfigurationError, match="username and password"):
        CyberTiplineSettings("https://exttest.cybertip.org/ispws", "u", "")
    CyberTiplineSettings("https://exttest.cybertip.org/ispws", "u", "p")
